"""A local stand-in teacher: a real OpenAI-compatible HTTP server on 127.0.0.1.

Tests and the offline demo reach it through LiteLLM exactly like a hosted provider. It answers
the amplifier's prompts deterministically for the toy sentiment task (`toy_sentiment`), grades a
judge's prompts (`evaluate/judge.py`) by word overlap with the reference, and can
be told to misbehave: latency, 429 with Retry-After, 500, hangs, malformed or empty replies,
JSON wrapped the way small models wrap it (`wrapped`) or never given at all (`never_json`),
wrong or off-label answers, calls that never answer (`stall_every`), and to serve one request at a
time like a local server (`serial`: Ollama, llama.cpp and mlx_lm queue the rest). It also serves
OpenAI's batch API (`/v1/files`, `/v1/batches`): a batch moves validating -> in_progress -> completed
one step per status request and stays in progress while `batch_hold` is set, so a test decides when
it ends; `no_batches` makes those endpoints answer 404 (`no_batch_uploads`: only the upload),
`batch_create_hang` holds the answer to a batch it created (a client that never hears the id), and
`batch_submissions` lists the request ids of every batch created. Switches are
attributes of `server.faults` (set them while it runs) and are also settable from another process
with `POST /admin/faults`; `GET /admin/stats` reports call counts.
It records every request it gets (`server.requests`), so tests can assert what a client sent it,
keys included (it also plays an attacker's endpoint).

    python -m nanodistill.testing.teacher_server --port 8765 --latency 0.2 [--serial] [--stall-every 20]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from types import FrameType, TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from nanodistill.evaluate.judge import JudgeItem, judge_request
from nanodistill.teacher.prompts import prompt_count, prompt_gold, prompt_input, prompt_kind, repaired_prompt
from nanodistill.testing import toy_sentiment
from nanodistill.testing.stand_in_tasks import Task, task_for

MODEL = "stand-in-teacher"


@dataclass
class Faults:
    """Misbehaviour switches; the counted ones apply to the next N chat calls and count down."""

    latency_s: float = 0.0
    rate_limit: int = 0
    retry_after_s: float = 1.0
    server_error: int = 0
    hang: int = 0
    hang_s: float = 120.0
    malformed: int = 0
    wrapped: int = 0  # JSON replies in a code fence, amid prose, or single-quoted with a trailing comma
    never_json: bool = False  # JSON replies, repairs included, come back as prose: a teacher that cannot follow it
    empty: int = 0
    wrong_answers: int = 0
    off_label: int = 0  # answers (not traces) outside the task's labels: {"answer": "banana"}
    serial: bool = False  # one request served at a time, the others wait their turn (latency each)
    stall_every: int = 0  # every Nth chat request never answers (until its client goes away)
    judge_out_of_range: int = 0  # grades outside [0, 1]: {"score": 7, ...}
    no_batches: bool = False  # the batch endpoints answer 404, as on a server without a batch API
    batch_hold: bool = False  # batches stay in progress until this is cleared
    no_batch_uploads: bool = False  # only POST /v1/files answers 404: the batch API fails once a job uses it
    batch_create_hang: bool = False  # POST /v1/batches creates the batch, then holds its answer while set
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def take(self, name: str) -> bool:
        """Consume one use of a counted fault; True when it applies to this call."""
        with self._lock:
            left = getattr(self, name)
            if left <= 0:
                return False
            setattr(self, name, left - 1)
            return True

    def update(self, values: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self) if not f.name.startswith("_")}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown fault switches {unknown}; known: {sorted(known)}")
        casts = {"bool": bool, "float": float, "int": int}
        with self._lock:
            for name, value in values.items():
                setattr(self, name, casts[str(known[name])](value))

    def snapshot(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}


@dataclass(frozen=True)
class SeenRequest:
    """One request as it arrived: method, path, query string and headers (names lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]

    def carries(self, secret: str) -> bool:
        """Whether `secret` appears anywhere a client could put a key: a header or the query."""
        return secret in self.query or any(secret in value for value in self.headers.values())


class _RecordHeaders:
    """ASGI middleware appending every HTTP request, any path, to `seen` before it is routed."""

    def __init__(self, app: ASGIApp, seen: list[SeenRequest]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            query = scope.get("query_string", b"").decode("latin-1")
            self.seen.append(SeenRequest(scope["method"], scope["path"], query, headers))
        await self.app(scope, receive, send)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _answer(user_input: str, *, wrong: bool) -> str:
    gold = toy_sentiment.label(user_input)
    if wrong:
        gold = "negative" if gold == "positive" else "positive"
    return json.dumps({"reasoning": toy_sentiment.explain(user_input, gold), "answer": gold})


def _generate(messages: list[dict[str, str]], count: int) -> str:
    digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    rng = random.Random(digest)
    vary_length = "length" in messages[-1]["content"]
    inputs = [toy_sentiment.review(rng, long=vary_length and rng.random() < 0.5) for _ in range(count)]
    return json.dumps({"inputs": inputs})


def _policy() -> str:
    return (
        "- Find the sentiment keywords in the review.\n"
        f"- Positive keywords include: {', '.join(toy_sentiment.POSITIVE[:8])}.\n"
        f"- Negative keywords include: {', '.join(toy_sentiment.NEGATIVE[:8])}.\n"
        "- Answer 'positive' when positive keywords outnumber negative ones, else 'negative'.\n"
        "- Output only the label, in lowercase."
    )


def _judge(item: JudgeItem, faults: Faults) -> str:
    """A deterministic grade: the F1 of the candidate's words against the reference's (no sacrebleu, so
    it is a second opinion next to chrf rather than a copy of it)."""
    if faults.take("judge_out_of_range"):
        return json.dumps({"score": 7, "reason": "out of ten"})
    gold, said = Counter(item.gold.casefold().split()), Counter(item.answer.casefold().split())
    shared = sum((gold & said).values())
    f1 = 2 * shared / (sum(gold.values()) + sum(said.values())) if gold or said else 1.0
    return json.dumps({"score": round(f1, 2), "reason": f"{shared} of {sum(gold.values())} reference words present"})


def _task_reply(task: Task, messages: list[dict[str, str]], kind: str | None, user_input: str | None) -> str | None:
    """The reply for the benchmarks' other tasks (`stand_in_tasks`), picked by the instruction the prompt carries."""
    if kind in ("trace", "answer", "explain") and user_input is not None:
        gold = (prompt_gold(messages) if kind == "explain" else None) or task.label(user_input)
        return json.dumps({"reasoning": task.explain(user_input, gold), "answer": gold})
    if kind == "policy":
        return task.policy()
    if kind == "generate":
        rng = random.Random(hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest())
        return json.dumps({"inputs": task.generate(rng, prompt_count(messages) or 8, messages[0]["content"])})
    return None


def _reply_text(messages: list[dict[str, str]], faults: Faults) -> str:
    """The deterministic reply to one of the amplifier's prompts or a judge's (or an echo for anything else)."""
    judged = judge_request(messages)
    if judged is not None:
        return _judge(judged, faults)
    kind = prompt_kind(messages)
    user_input = prompt_input(messages)
    task = task_for(messages[0].get("content") or "") if messages else None
    reply = _task_reply(task, messages, kind, user_input) if task is not None else None
    if reply is not None:
        return reply
    if kind == "answer" and user_input is not None and faults.take("off_label"):
        return json.dumps({"reasoning": "The review is about fruit.", "answer": "banana"})
    if kind in ("trace", "answer") and user_input is not None:
        return _answer(user_input, wrong=faults.take("wrong_answers"))
    if kind == "explain" and user_input is not None:
        gold = prompt_gold(messages) or toy_sentiment.label(user_input)
        return json.dumps({"reasoning": toy_sentiment.explain(user_input, gold), "answer": gold})
    if kind == "policy":
        return _policy()
    if kind == "generate":
        return _generate(messages, prompt_count(messages) or 8)
    return "echo: " + ((messages[-1].get("content") or "") if messages else "")


def _completion(text: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    prompt_tokens = sum(_tokens(m.get("content") or "") for m in messages)
    completion_tokens = _tokens(text) if text else 0
    return {
        "id": "chatcmpl-" + hashlib.sha256(text.encode()).hexdigest()[:12],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


_JSON_KINDS = ("trace", "explain", "answer", "generate")


def _misformatted(text: str, style: int) -> str:
    """A JSON reply as small models give it: fenced, amid prose, or Python-quoted with a trailing comma."""
    if style % 3 == 0:
        return f"Sure! Here is my reply:\n```json\n{text}\n```\nLet me know if you need anything else."
    if style % 3 == 1:
        return f"Of course. {text} I hope this helps!"
    return repr(json.loads(text))[:-1] + ",}"


def _prose(kind: str | None) -> str:
    """A reply that ignores the asked-for format and holds nothing a tolerant reader could take."""
    if kind == "generate":
        return "There are many kinds of reviews people could write, about food, films and gadgets."
    return "This one is interesting. It says something about the product, and people may feel either way."


def _file_object(file_id: str, size: int, filename: str, purpose: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "server_error"}}, status, headers=headers)


class TeacherServer:
    """The running server: `.url` (an OpenAI `api_base`), `.model`, `.faults`, `.calls`, `.requests`,
    `.stop()`."""

    model = f"openai/{MODEL}"

    def __init__(self, sock: socket.socket, faults: Faults) -> None:
        self.faults = faults
        self.calls = 0
        self.calls_by_kind: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.stalled = 0
        self.bodies: Counter[str] = Counter()  # chat requests by a digest of their messages: copies show
        self._turn = asyncio.Lock()  # serial mode's queue (FIFO)
        self.requests: list[SeenRequest] = []
        self.max_tokens: list[int | None] = []  # every chat request's max_tokens, batched ones included
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_submissions: list[list[str]] = []  # the custom_ids of every batch created, in order
        self.batch_polls: Counter[str] = Counter()  # status requests per batch id
        self.port: int = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._sock = sock
        self._stopping = threading.Event()
        app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/files", self._upload, methods=["POST"]),
                Route("/v1/files/{file_id}/content", self._file_content, methods=["GET"]),
                Route("/v1/batches", self._create_batch, methods=["POST"]),
                Route("/v1/batches", self._list_batches, methods=["GET"]),
                Route("/v1/batches/{batch_id}", self._batch_status, methods=["GET"]),
                Route("/admin/faults", self._set_faults, methods=["POST"]),
                Route("/admin/stats", self._stats, methods=["GET"]),
            ]
        )
        recorded = _RecordHeaders(app, self.requests)
        config = uvicorn.Config(
            recorded, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="teacher-server", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the stand-in teacher server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._stopping.set()
        self._uvicorn.should_exit = True
        self._thread.join(timeout=15)
        self._sock.close()

    def __enter__(self) -> TeacherServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _hang(self) -> None:
        deadline = time.monotonic() + self.faults.hang_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(0.05)

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        messages: list[dict[str, str]] = body.get("messages") or []
        self.calls += 1
        self.max_tokens.append(body.get("max_tokens"))
        self.calls_by_kind[prompt_kind(messages) or "other"] += 1
        self.bodies[hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()] += 1
        every = self.faults.stall_every
        if every > 0 and self.calls % every == 0:
            return await self._stall(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if not self.faults.serial:
                return await self._respond(messages)
            async with self._turn:
                return await self._respond(messages)
        finally:
            self.in_flight -= 1

    async def _stall(self, request: Request) -> Response:
        """Never answer: a lost request. It holds no serving slot, and ends when its client goes away."""
        self.stalled += 1
        while not self._stopping.is_set() and not await request.is_disconnected():
            await asyncio.sleep(0.05)
        return _error(504, "the stand-in teacher stalled on purpose")

    async def _respond(self, messages: list[dict[str, str]]) -> Response:
        faults = self.faults
        if faults.latency_s > 0:
            await asyncio.sleep(faults.latency_s)
        if faults.take("rate_limit"):
            return _error(429, "rate limited by the stand-in teacher", {"retry-after": f"{faults.retry_after_s:g}"})
        if faults.take("server_error"):
            return _error(500, "the stand-in teacher failed on purpose")
        if faults.take("hang"):
            await self._hang()
            return _error(504, "the stand-in teacher hung on purpose")
        return JSONResponse(_completion(self._text(messages), messages))

    def _text(self, messages: list[dict[str, str]]) -> str:
        """The reply's text, with the reply-shaping faults applied (live and batched calls alike)."""
        faults = self.faults
        if faults.take("empty"):
            return ""
        if faults.take("malformed"):
            return '{"reasoning": "The review uses the keyword'
        asked = repaired_prompt(messages) or messages  # a repair request is answered as its original
        kind = prompt_kind(asked)
        text = _reply_text(asked, faults)
        if kind in _JSON_KINDS and faults.never_json:
            return _prose(kind)
        if kind in _JSON_KINDS and faults.take("wrapped"):
            return _misformatted(text, faults.wrapped)
        return text

    # -- the OpenAI batch API -------------------------------------------------------------------------

    async def _upload(self, request: Request) -> Response:
        if self.faults.no_batches or self.faults.no_batch_uploads:
            return _error(404, "no such endpoint: /v1/files")
        form = await request.form()
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return _error(400, "a multipart 'file' is required")
        content = await upload.read()
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = content
        return JSONResponse(_file_object(file_id, len(content), upload.filename or "batch.jsonl", "batch"))

    async def _file_content(self, request: Request) -> Response:
        content = self.files.get(request.path_params["file_id"])
        if self.faults.no_batches or content is None:
            return _error(404, "no such file")
        return Response(content, media_type="application/jsonl")

    async def _create_batch(self, request: Request) -> Response:
        if self.faults.no_batches:
            return _error(404, "no such endpoint: /v1/batches")
        body = await request.json()
        content = self.files.get(body.get("input_file_id") or "")
        if content is None:
            return _error(400, f"unknown input_file_id {body.get('input_file_id')!r}")
        lines = [json.loads(line) for line in content.decode().splitlines() if line.strip()]
        batch_id = f"batch_{len(self.batch_submissions) + 1}"  # batches may be forgotten: ids never repeat
        self.batch_submissions.append([line["custom_id"] for line in lines])
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body.get("endpoint", "/v1/chat/completions"),
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"),
            "status": "validating",
            "created_at": int(time.time()),
            "output_file_id": None,
            "error_file_id": None,
            "errors": None,
            "metadata": body.get("metadata"),
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
        }
        while self.faults.batch_create_hang and not self._stopping.is_set():
            await asyncio.sleep(0.05)
        return JSONResponse(self.batches[batch_id])

    async def _list_batches(self, request: Request) -> Response:
        if self.faults.no_batches:
            return _error(404, "no such endpoint: /v1/batches")
        return JSONResponse({"object": "list", "data": list(self.batches.values()), "has_more": False})

    async def _batch_status(self, request: Request) -> Response:
        """The batch, one step further along than last asked (unless held in progress)."""
        batch = self.batches.get(request.path_params["batch_id"])
        if self.faults.no_batches or batch is None:
            return _error(404, "no such batch")
        self.batch_polls[batch["id"]] += 1
        if batch["status"] == "validating":
            batch["status"] = "in_progress"
        elif batch["status"] == "in_progress" and not self.faults.batch_hold:
            self._finish_batch(batch)
        return JSONResponse(batch)

    def _finish_batch(self, batch: dict[str, Any]) -> None:
        lines = [json.loads(line) for line in self.files[batch["input_file_id"]].decode().splitlines() if line]
        out = []
        for n, line in enumerate(lines):
            body = line["body"]
            messages = body.get("messages") or []
            self.max_tokens.append(body.get("max_tokens"))
            self.calls_by_kind[prompt_kind(messages) or "other"] += 1
            response = {
                "status_code": 200,
                "request_id": f"req-{n}",
                "body": _completion(self._text(messages), messages),
            }
            out.append(
                {"id": f"{batch['id']}-{n}", "custom_id": line["custom_id"], "response": response, "error": None}
            )
        output_id = f"file-{len(self.files) + 1}"
        self.files[output_id] = "".join(json.dumps(row) + "\n" for row in out).encode()
        batch.update(
            status="completed",
            output_file_id=output_id,
            request_counts={"total": len(lines), "completed": len(lines), "failed": 0},
        )

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def _set_faults(self, request: Request) -> Response:
        try:
            self.faults.update(await request.json())
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return JSONResponse(self.faults.snapshot())

    async def _stats(self, request: Request) -> Response:
        return JSONResponse(
            {
                "calls": self.calls,
                "calls_by_kind": dict(self.calls_by_kind),
                "max_in_flight": self.max_in_flight,
                "stalled": self.stalled,
                "batch_submissions": len(self.batch_submissions),
                "faults": self.faults.snapshot(),
            }
        )


def start_teacher_server(
    port: int = 0, *, latency_s: float = 0.0, serial: bool = False, stall_every: int = 0
) -> TeacherServer:
    """Start the stand-in teacher on 127.0.0.1 (`port=0` picks a free port) in a background thread."""
    # proto=IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say they are
    # TCP, and with Nagle on, every reply on a kept-alive connection waited ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    server = TeacherServer(sock, Faults(latency_s=latency_s, serial=serial, stall_every=stall_every))
    server.start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the local stand-in teacher (OpenAI-compatible).")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every chat call")
    parser.add_argument("--serial", action="store_true", help="serve one request at a time, like a local server")
    parser.add_argument("--stall-every", type=int, default=0, help="every Nth chat request never answers")
    args = parser.parse_args()
    done = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with start_teacher_server(
        args.port, latency_s=args.latency, serial=args.serial, stall_every=args.stall_every
    ) as server:
        print(json.dumps({"url": server.url, "model": server.model, "port": server.port}), flush=True)
        done.wait()


if __name__ == "__main__":
    main()
