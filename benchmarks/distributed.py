"""Data-parallel training: what two local ranks cost here, and what more hosts would buy.

On this machine, for a LoRA adapter (rank 8, every layer) on a random Llama student built by
`nanodistill.testing.tiny_student` (default: hidden 576, 8 layers, SmolLM2-135M's width), it measures
  - the per-step compute time (forward, backward) of one process on the global batch, and of each of
    two local ranks (mlx.launch, ring backend on 127.0.0.1) on half of it, run side by side;
  - the all-reduce time of the adapter's gradient bytes between the two ranks (mlx's
    `average_gradients`, what mlx-lm's training step calls).
From those it projects the step time and speedup for 2, 4 and 8 hosts on 10 Gb/s Ethernet and on
Thunderbolt 5 (80 Gb/s), with the model stated in the table:
    step(N) = compute(1 process) / N + all-reduce(bytes, bandwidth, N),
    all-reduce = 2 (N - 1) / N * bytes / bandwidth  (a ring moves that much per host; latency ignored).

    python benchmarks/distributed.py [--hidden 576] [--layers 8] [--batch 8] [--seq 128] [--steps 5]

Goals: the projection gives 2 Thunderbolt 5 hosts >= 1.8x, and the measured loopback all-reduce takes
less than a rank's compute (so the ring itself is not the bottleneck here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

NAME = "distributed"
LINKS_GBPS = {"10GbE": 10.0, "TB5": 80.0}
HOSTS = (2, 4, 8)
GOALS = {"projected_speedup_2_hosts_tb5_min": 1.8, "allreduce_fraction_of_rank_compute_max": 1.0}


def probe(out: Path, model_dir: str, batch: int, seq: int, steps: int) -> None:
    """One rank (or the lone process): time `steps` compute steps on its share of the batch and, with
    more than one rank, `steps` gradient all-reduces; rank 0 writes the medians to `out`."""
    import mlx.core as mx
    import mlx.nn as nn
    from mlx.utils import tree_flatten
    from mlx_lm.tuner.trainer import default_loss
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load

    world = mx.distributed.init()
    model = load(model_dir)[0]
    model.freeze()
    linear_to_lora_layers(model, len(model.layers), {"rank": 8, "scale": 20.0, "dropout": 0.0})
    mx.random.seed(world.rank())
    local = batch // world.size()
    tokens = mx.random.randint(0, model.args.vocab_size, (local, seq + 1))
    lengths = mx.array([[0, seq]] * local)
    value_and_grad = nn.value_and_grad(model, default_loss)

    def barrier() -> None:
        mx.eval(mx.distributed.all_sum(mx.array(1), stream=mx.cpu))

    def step() -> Any:
        (loss, _), grads = value_and_grad(model, tokens, lengths)
        mx.eval(loss, grads)
        return grads

    grads = step()
    compute, reduce = [], []
    for _ in range(steps):
        barrier()
        tick = time.perf_counter()
        grads = step()
        compute.append(time.perf_counter() - tick)
    if world.size() > 1:
        for _ in range(steps):
            barrier()
            tick = time.perf_counter()
            mx.eval(nn.average_gradients(grads))
            reduce.append(time.perf_counter() - tick)
    flat = [value for _, value in tree_flatten(grads)]
    if world.rank() == 0:
        figures = {
            "ranks": world.size(),
            "compute_s": statistics.median(compute),
            "allreduce_s": statistics.median(reduce) if reduce else 0.0,
            "gradient_bytes": sum(v.nbytes for v in flat),
            "trainable_params": sum(v.size for v in flat),
        }
        out.write_text(json.dumps(figures))


def run_probe(ranks: int, model_dir: Path, args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    """The probe as one process, or as `ranks` local ranks under mlx.launch."""
    from nanodistill.train.distributed import LOCAL_HOST, free_port_run

    out = model_dir.parent / f"probe-{ranks}.json"
    command = [sys.executable, __file__, "--probe", str(out), "--model", str(model_dir)]
    command += ["--batch", str(args.batch), "--seq", str(args.seq), "--steps", str(args.steps)]
    if ranks > 1:
        launch = [sys.executable, "-c", "from mlx._distributed_utils.launch import main; main()"]
        launch += ["--backend", "ring", "--hosts", ",".join([LOCAL_HOST] * ranks)]
        command = [*launch, "--starting-port", str(free_port_run(ranks)), "--", *command]
    done = subprocess.run(command, env=env, stdin=subprocess.PIPE, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0 or not out.is_file():
        raise SystemExit(f"probe with {ranks} rank(s) failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(out.read_text())
    return figures


def projection(compute_1: float, nbytes: int) -> list[dict[str, Any]]:
    rows = []
    for link, gbps in LINKS_GBPS.items():
        bandwidth = gbps * 1e9 / 8
        for hosts in HOSTS:
            allreduce = 2 * (hosts - 1) / hosts * nbytes / bandwidth
            step = compute_1 / hosts + allreduce
            rows.append({"link": link, "hosts": hosts, "allreduce_s": allreduce, "step_s": step})
            rows[-1]["speedup"] = compute_1 / step
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="global batch (examples per step)")
    parser.add_argument("--seq", type=int, default=128, help="tokens per example")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measure (median)")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe is not None:
        probe(args.probe, args.model, args.batch, args.seq, args.steps)
        return

    from nanodistill.platform.blas import fast_blas_env
    from nanodistill.settings import load_settings
    from nanodistill.testing.tiny_student import build_tiny_student

    with tempfile.TemporaryDirectory(prefix="nd-bench-dist-") as tmp:
        os.environ.setdefault("NANODISTILL_HOME", str(Path(tmp) / "home"))
        model_dir = build_tiny_student(Path(tmp) / "student", hidden_size=args.hidden, num_layers=args.layers)
        env = {**os.environ, **fast_blas_env(load_settings()), "PYTHONPATH": str(Path(__file__).parent.parent)}
        one = run_probe(1, model_dir, args, env)
        two = run_probe(2, model_dir, args, env)

    compute_1, nbytes = one["compute_s"], two["gradient_bytes"]
    local_step = two["compute_s"] + two["allreduce_s"]
    rows = projection(compute_1, nbytes)
    print(
        f"model: Llama student, hidden {args.hidden}, {args.layers} layers, LoRA rank 8 on every layer: "
        f"{two['trainable_params']:,} trainable parameters, {nbytes / 1e6:.2f} MB of float32 gradients per step; "
        f"global batch {args.batch} x {args.seq} tokens"
    )
    print(
        f"measured here: 1 process {compute_1 * 1e3:.1f} ms/step compute; 2 local ranks "
        f"{two['compute_s'] * 1e3:.1f} ms compute each + {two['allreduce_s'] * 1e3:.2f} ms all-reduce "
        f"(speedup {compute_1 / local_step:.2f}x on {os.cpu_count()} CPUs)"
    )
    print("projected: step = compute(1) / N + 2 (N-1)/N * bytes / bandwidth (ring all-reduce, latency ignored)")
    print(f"{'link':<7} {'hosts':>5} {'all-reduce ms':>14} {'step ms':>9} {'speedup':>8}")
    for row in rows:
        print(
            f"{row['link']:<7} {row['hosts']:>5} {row['allreduce_s'] * 1e3:>14.2f} "
            f"{row['step_s'] * 1e3:>9.1f} {row['speedup']:>7.2f}x"
        )
    projected = {f"{r['link']}_{r['hosts']}_hosts": {"step_s": r["step_s"], "speedup": r["speedup"]} for r in rows}
    tb5_2 = projected["TB5_2_hosts"]["speedup"]
    fraction = two["allreduce_s"] / two["compute_s"]
    figures = {
        "model": {"hidden": args.hidden, "layers": args.layers, "lora_rank": 8, "batch": args.batch, "seq": args.seq},
        "trainable_params": two["trainable_params"],
        "gradient_bytes": nbytes,
        "compute_1_process_s": compute_1,
        "compute_per_rank_2_local_s": two["compute_s"],
        "allreduce_2_local_s": two["allreduce_s"],
        "local_2_rank_speedup": compute_1 / local_step,
        "allreduce_fraction_of_rank_compute": fraction,
        "projected": projected,
        "cpu_count": os.cpu_count(),
    }
    met = tb5_2 >= GOALS["projected_speedup_2_hosts_tb5_min"] and (
        fraction <= GOALS["allreduce_fraction_of_rank_compute_max"]
    )
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))


if __name__ == "__main__":
    main()
