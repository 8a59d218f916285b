"""Linux CPU speed: LoRA training and generation with the fast BLAS vs mlx-cpu's stock BLAS.

Same machine, same tiny Llama student, same data, same seed; each side runs in its own
process (the fast one with ``fast_blas_env``'s preload). Goals: training tokens/s at least
10x, generation tokens/s at least 1.3x, and every reported loss equal to 1e-4 relative.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "linux_blas"
HIDDEN_SIZE = 384
NUM_LAYERS = 4
ITERS = 40
REPORT_EVERY = 5
BATCH_SIZE = 2
MAX_SEQ_LENGTH = 128
GEN_TOKENS = 200
GOALS = {"train_speedup": 10.0, "generate_speedup": 1.3, "max_loss_rel_diff": 1e-4}

# mlx-lm's own LoRA entry (the `mlx_lm lora` defaults, fewer iterations), recording its reports.
TRAIN_SCRIPT = r"""
import json, sys, types
import numpy as np
from mlx_lm import load
from mlx_lm.lora import CONFIG_DEFAULTS, train_model
from mlx_lm.tuner.datasets import load_dataset
from mlx_lm.tuner.trainer import TrainingCallback

model_path, data, adapters, iters, report, batch, max_len = sys.argv[1:8]
args = types.SimpleNamespace(**{**CONFIG_DEFAULTS, "model": model_path, "data": data, "train": True,
    "adapter_path": adapters, "iters": int(iters), "steps_per_report": int(report),
    "steps_per_eval": int(iters), "batch_size": int(batch), "max_seq_length": int(max_len),
    "num_layers": -1, "val_batches": 2, "save_every": int(iters)})

class Record(TrainingCallback):
    def __init__(self):
        self.train, self.val = [], []
    def on_train_loss_report(self, info):
        self.train.append(info)
    def on_val_loss_report(self, info):
        self.val.append(info)

np.random.seed(args.seed)
model, tokenizer = load(model_path)[:2]
train_set, valid_set, _ = load_dataset(args, tokenizer)
record = Record()
train_model(args, model, train_set, valid_set, record)
print(json.dumps({"train": record.train, "val": record.val}))
"""

# Greedy decoding of a fixed number of tokens (no stop on end-of-sequence). The rate is one
# over the median time between tokens: robust to other processes taking the CPU for a while,
# and free of prompt processing and compilation.
GENERATE_SCRIPT = r"""
import json, statistics, sys, time
import mlx.core as mx
from mlx_lm import load
from mlx_lm.generate import generate_step

model, tokenizer = load(sys.argv[1])[:2]
count = int(sys.argv[2])
prompt = mx.array(tokenizer.encode("Classify the sentiment of the review as positive or negative."))
tokens, stamps = [], []
for token, _ in generate_step(prompt, model, max_tokens=count, sampler=lambda x: mx.argmax(x, axis=-1)):
    tokens.append(int(token))
    stamps.append(time.perf_counter())
gaps = [b - a for a, b in zip(stamps, stamps[1:])]
print(json.dumps({"tokens": tokens, "tokens_per_s": 1 / statistics.median(gaps)}))
"""


def run_json(script: str, args: list[str], env: dict[str, str]) -> dict[str, object]:
    """Run a worker script in a fresh process and return the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def write_data(folder: Path) -> Path:
    """Train/valid rows built from the tiny tokenizer's own corpus, so the text tokenizes well."""
    from nanodistill.testing.tiny_student import BUILTIN_CORPUS

    folder.mkdir(parents=True, exist_ok=True)
    lines = list(BUILTIN_CORPUS)
    rows = [{"text": " ".join(lines[i:] + lines[:i])} for i in range(len(lines))]
    (folder / "train.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    (folder / "valid.jsonl").write_text("\n".join(json.dumps(row) for row in rows[:4]) + "\n")
    return folder


def train_figures(result: dict[str, object]) -> tuple[float, list[float]]:
    """Median tokens/s over the reports after the first (which pays for compilation) and all losses."""
    train = result["train"]
    val = result["val"]
    assert isinstance(train, list) and isinstance(val, list)
    speed = statistics.median(float(r["tokens_per_second"]) for r in train[1:])
    losses = [float(r["train_loss"]) for r in train] + [float(r["val_loss"]) for r in val]
    return speed, losses


def main() -> int:
    from nanodistill.platform.blas import blas_status, fast_blas_env, without_fast_blas
    from nanodistill.settings import load_settings
    from nanodistill.testing.tiny_student import build_tiny_student

    with tempfile.TemporaryDirectory(prefix="nanodistill-bench-") as tmp:
        root = Path(tmp)
        os.environ["NANODISTILL_HOME"] = str(root / "home")
        settings = load_settings()
        tick = time.perf_counter()
        fast_env = fast_blas_env(settings)
        setup_s = time.perf_counter() - tick
        status = blas_status(settings)
        figures: dict[str, object] = {
            "fast_blas_library": status.library,
            "fast_blas_threads": status.threads,
            "first_use_build_and_check_s": round(setup_s, 2),
        }
        if not fast_env:
            figures["fallback_reason"] = status.fallback_reason
            print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": False}))
            return 0

        student = build_tiny_student(root / "student", hidden_size=HIDDEN_SIZE, num_layers=NUM_LAYERS)
        data = write_data(root / "data")
        stock_env = without_fast_blas(os.environ)
        envs = {"stock": stock_env, "fast": {**stock_env, **fast_env}}
        train: dict[str, tuple[float, list[float]]] = {}
        generate: dict[str, dict[str, object]] = {}
        for side, env in envs.items():
            args = [str(student), str(data), str(root / f"adapters-{side}")]
            args += [str(ITERS), str(REPORT_EVERY), str(BATCH_SIZE), str(MAX_SEQ_LENGTH)]
            tick = time.perf_counter()
            train[side] = train_figures(run_json(TRAIN_SCRIPT, args, env))
            figures[f"train_wall_s_{side}"] = round(time.perf_counter() - tick, 1)
            generate[side] = run_json(GENERATE_SCRIPT, [str(student), str(GEN_TOKENS)], env)

    stock_losses, fast_losses = train["stock"][1], train["fast"][1]
    loss_diff = max(abs(f - s) / abs(s) for s, f in zip(stock_losses, fast_losses, strict=True))
    train_speedup = train["fast"][0] / train["stock"][0]
    stock_gen, fast_gen = (float(str(generate[side]["tokens_per_s"])) for side in ("stock", "fast"))
    figures |= {
        "train_tokens_per_s_stock": round(train["stock"][0], 1),
        "train_tokens_per_s_fast": round(train["fast"][0], 1),
        "train_speedup": round(train_speedup, 2),
        "generate_tokens_per_s_stock": round(stock_gen, 1),
        "generate_tokens_per_s_fast": round(fast_gen, 1),
        "generate_speedup": round(fast_gen / stock_gen, 2),
        "losses_compared": len(stock_losses),
        "max_loss_rel_diff": loss_diff,
        "generated_tokens_equal": generate["stock"]["tokens"] == generate["fast"]["tokens"],
    }
    met = (
        train_speedup >= GOALS["train_speedup"]
        and fast_gen / stock_gen >= GOALS["generate_speedup"]
        and loss_diff <= GOALS["max_loss_rel_diff"]
    )
    print(json.dumps({"benchmark": NAME, "figures": figures, "goals": GOALS, "met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
