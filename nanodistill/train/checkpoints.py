"""Training checkpoints on disk: trainable weights, optimizer state and progress, written atomically.

A checkpoint is a folder `checkpoints/step-0000120/` holding `adapters.safetensors`,
`optimizer.safetensors` and `state.json`. It is written under a temporary name and renamed into
place, so a process killed mid-write never leaves a checkpoint that looks complete.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import mlx.core as mx

PREFIX = "step-"
TMP_PREFIX = ".tmp-"
KEEP = 2
STATE_FILE = "state.json"
ADAPTERS_FILE = "adapters.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"


@dataclass
class TrainState:
    """Everything a resumed run needs besides the weights: where it was and what it had seen."""

    base_model: str
    method: str
    iteration: int = 0
    best_val_loss: float | None = None
    best_iteration: int | None = None
    evals_since_best: int = 0
    last_eval_iteration: int | None = None
    trained_tokens: int = 0
    final_train_loss: float | None = None
    early_stopped: bool = False
    reports: list[dict[str, Any]] = field(default_factory=list)


def save_checkpoint(
    checkpoints_dir: Path,
    state: TrainState,
    weights: dict[str, mx.array],
    optimizer_state: dict[str, mx.array],
) -> Path:
    """Write the checkpoint for state.iteration and drop all but the newest KEEP."""
    import mlx.core as mx

    checkpoints_dir.mkdir(parents=True, exist_ok=True)
    name = f"{PREFIX}{state.iteration:07d}"
    tmp = checkpoints_dir / f"{TMP_PREFIX}{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    mx.save_safetensors(str(tmp / ADAPTERS_FILE), weights)
    mx.save_safetensors(str(tmp / OPTIMIZER_FILE), optimizer_state)
    (tmp / STATE_FILE).write_text(json.dumps(asdict(state)))
    final = checkpoints_dir / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in _complete_checkpoints(checkpoints_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(checkpoints_dir: Path) -> Path | None:
    found = _complete_checkpoints(checkpoints_dir)
    return found[-1] if found else None


def read_state(checkpoint: Path) -> TrainState:
    return TrainState(**json.loads((checkpoint / STATE_FILE).read_text()))


def _complete_checkpoints(checkpoints_dir: Path) -> list[Path]:
    if not checkpoints_dir.is_dir():
        return []
    found = [p for p in checkpoints_dir.glob(f"{PREFIX}*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)
