"""Train a student with mlx-lm in-process: LoRA, DoRA or full fine-tuning, with resumable checkpoints.

mlx-lm's `train` loop does the optimisation; this module sets the model up the way `mlx_lm.lora`
does and hooks every step through the batch iterator it hands to `train`. That hook is where
validation, best-weights tracking, early stopping, checkpoints and cancellation happen, numbered in
global steps, so a resumed run continues the same schedule (mlx-lm's loop always counts from 1 and
only calls its callback at report time).

Under mlx.distributed (ranks started by `train/distributed.py`) every rank runs this same loop on its
share of each batch; rank 0 alone writes checkpoints and weights and restores a checkpoint, which it
then shares with the other ranks, and a stop is agreed by all ranks at a step boundary.
"""

from __future__ import annotations

import json
import math
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nanodistill.errors import NanodistillError
from nanodistill.student.ref import loadable_source
from nanodistill.train.checkpoints import (
    ADAPTERS_FILE,
    OPTIMIZER_FILE,
    TrainState,
    latest_checkpoint,
    read_state,
    save_checkpoint,
)
from nanodistill.train.options import TrainOptions, option_problems

if TYPE_CHECKING:
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

# mlx-lm's `train` always saves its final weights to `adapter_file`; its periodic saves are turned
# off (steps_per_save past the end) because checkpoints and best weights are written here.
LATEST_ADAPTERS = "latest_adapters.safetensors"


class TrainConfig(TrainOptions):
    """The trainer's config: the user's options (one table, in options.py) plus what the job resolves
    (the base model folder, the iteration count) and engine-internal knobs no user sets."""

    base_model: str
    iters: int = 200
    init_adapter: str | None = None
    lora_dropout: float = 0.0
    steps_per_report: int = 10
    val_batches: int = 25


@dataclass(frozen=True)
class TrainResult:
    iterations_done: int
    stopped: bool
    early_stopped: bool
    best_val_loss: float | None
    best_iteration: int | None
    final_train_loss: float | None
    trained_tokens: int
    wall_s: float
    adapter_path: Path
    reports: list[dict[str, Any]] = field(default_factory=list)


def iters_for_epochs(n_train: int, batch_size: int, epochs: float) -> int:
    """Steps for `epochs` passes; mlx-lm drops the last partial batch of every epoch."""
    if batch_size < 1:
        raise NanodistillError(f"batch_size must be at least 1, got {batch_size}.")
    if n_train < batch_size:
        raise NanodistillError(
            f"{n_train} training rows cannot fill one batch of batch_size={batch_size}: add rows or lower batch_size."
        )
    if epochs <= 0:
        raise NanodistillError(f"epochs must be positive, got {epochs}.")
    return max(1, math.ceil(epochs * (n_train // batch_size)))


def check_config(config: TrainConfig) -> None:
    """Reject settings mlx-lm would fail on late (or silently misuse), naming the field."""
    problems = option_problems(config)
    if config.steps_per_report < 1:
        problems.append(f"'steps_per_report' must be >= 1, got {config.steps_per_report}")
    if not 0.0 <= config.lora_dropout < 1.0:
        problems.append(f"'lora_dropout' must be in [0, 1), got {config.lora_dropout}")
    if config.val_batches == 0 or config.val_batches < -1:
        problems.append(f"'val_batches' must be -1 (all) or at least 1, got {config.val_batches}")
    if problems:
        raise NanodistillError("; ".join(problems) + ".")


def run_training(
    config: TrainConfig,
    data_dir: Path,
    out_dir: Path,
    *,
    on_report: Callable[[dict[str, Any]], None],
    should_stop: Callable[[], bool],
) -> TrainResult:
    """Train, or resume from out_dir/checkpoints; the best weights end in out_dir/adapters.safetensors."""
    started = time.perf_counter()
    check_config(config)
    source = loadable_source(config.base_model, "base_model")

    import mlx.core as mx
    import mlx.optimizers as optim
    from mlx_lm.tuner.trainer import TrainingArgs, train
    from mlx_lm.utils import load

    world = mx.distributed.init()
    lead = world.rank() == 0
    model, tokenizer = load(source)[:2]
    train_set, valid_set = _load_data(data_dir, tokenizer, config)
    mx.random.seed(config.seed)
    _make_trainable(model, config)
    if config.init_adapter and lead:  # a checkpoint restored below replaces these, so a resumed run continues as it was
        model.load_weights(str(Path(config.init_adapter) / "adapters.safetensors"), strict=False)
    if lead:
        (out_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        _write_adapter_config(out_dir, config)
    optimizer = optim.Adam(learning_rate=config.learning_rate)
    optimizer.init(model.trainable_parameters())

    checkpoint = latest_checkpoint(out_dir / "checkpoints") if lead else None
    state = TrainState(base_model=source, method=config.method)
    if checkpoint is not None:
        state = _restore(checkpoint, model, optimizer, state)
    if world.size() > 1:
        state = _share_resume_point(world, model, optimizer, state, bool(config.init_adapter))
    if state.iteration:
        mx.random.seed(config.seed + state.iteration)
    run = _Run(config, model, optimizer, valid_set, out_dir, state, on_report, should_stop, world)

    remaining = config.iters - state.iteration
    if remaining > 0 and not state.early_stopped:
        args = TrainingArgs(
            batch_size=config.batch_size,
            iters=remaining,
            steps_per_report=config.steps_per_report,
            steps_per_save=remaining + 1,
            max_seq_length=config.max_seq_length,
            adapter_file=str(out_dir / "checkpoints" / LATEST_ADAPTERS),
            grad_checkpoint=config.grad_checkpoint,
        )
        train(
            model=model,
            optimizer=optimizer,
            train_dataset=train_set,
            val_dataset=None,
            args=args,
            iterate_batches=run.iterate_batches,
            training_callback=_reporter(run),
            **({"loss": _global_token_loss(world)} if world.size() > 1 else {}),
        )
    run.finish()
    return TrainResult(
        iterations_done=state.iteration,
        stopped=run.stopped,
        early_stopped=state.early_stopped,
        best_val_loss=state.best_val_loss,
        best_iteration=state.best_iteration,
        final_train_loss=state.final_train_loss,
        trained_tokens=state.trained_tokens,
        wall_s=time.perf_counter() - started,
        adapter_path=out_dir,
        reports=list(state.reports),
    )


def _load_data(data_dir: Path, tokenizer: Any, config: TrainConfig) -> tuple[Any, Any]:
    from mlx_lm.tuner.datasets import CacheDataset, load_local_dataset

    for name in ("train.jsonl", "valid.jsonl"):
        if not (data_dir / name).is_file():
            raise NanodistillError(f"data_dir={str(data_dir)!r} has no {name}; run prepare_training_data.")
    options = types.SimpleNamespace(mask_prompt=config.mask_prompt)
    train_set, valid_set, _ = load_local_dataset(data_dir, tokenizer, options)
    for name, dataset in (("train", train_set), ("valid", valid_set)):
        if len(dataset) < config.batch_size:
            raise NanodistillError(
                f"{name}.jsonl has {len(dataset)} rows, fewer than batch_size={config.batch_size}: "
                "lower batch_size or prepare more rows."
            )
    return CacheDataset(train_set), CacheDataset(valid_set)


def _make_trainable(model: nn.Module, config: TrainConfig) -> None:
    """As mlx_lm.lora does: freeze the base, then add (Do)LoRA layers; `full` trains every weight."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    model.freeze()
    if config.method == "full":
        model.unfreeze()
        return
    n_layers = len(cast(Any, model).layers)
    # As mlx-lm does: asking for more layers than the model has adapts all of them.
    layers = n_layers if config.num_layers < 0 else min(config.num_layers, n_layers)
    linear_to_lora_layers(model, layers, _lora_parameters(config), use_dora=config.method == "dora")


def _lora_parameters(config: TrainConfig) -> dict[str, float]:
    return {"rank": config.lora_rank, "scale": config.lora_scale, "dropout": config.lora_dropout}


def _write_adapter_config(out_dir: Path, config: TrainConfig) -> None:
    """The file `mlx_lm.load(base, adapter_path=out_dir)` and mlx-lm's fuse read."""
    adapter_config = {
        **config.model_dump(),
        "fine_tune_type": config.method,
        "lora_parameters": None if config.method == "full" else _lora_parameters(config),
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))


def _trainable_weights(model: nn.Module) -> dict[str, mx.array]:
    from mlx.utils import tree_flatten

    return dict(cast(list[tuple[str, Any]], tree_flatten(model.trainable_parameters())))


def _restore(checkpoint: Path, model: nn.Module, optimizer: optim.Optimizer, fresh: TrainState) -> TrainState:
    """Load a checkpoint's weights and optimizer moments; refuse one made with other settings."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map_with_path

    state = read_state(checkpoint)
    if (state.base_model, state.method) != (fresh.base_model, fresh.method):
        raise NanodistillError(
            f"The checkpoint in {checkpoint.parent} was made with base_model={state.base_model!r}, "
            f"method={state.method!r}; resume with the same settings or train into a new out_dir."
        )
    weights = cast(dict[str, Any], mx.load(str(checkpoint / ADAPTERS_FILE)))
    current = _trainable_weights(model)
    if set(weights) != set(current) or any(weights[k].shape != v.shape for k, v in current.items()):
        raise NanodistillError(
            f"The checkpoint in {checkpoint.parent} does not match lora_rank/num_layers of this run; "
            "resume with the same settings or train into a new out_dir."
        )
    model.load_weights(list(weights.items()), strict=False)
    saved = cast(dict[str, Any], mx.load(str(checkpoint / OPTIMIZER_FILE)))
    expected = dict(cast(list[tuple[str, Any]], tree_flatten(optimizer.state)))
    if set(saved) != set(expected):
        raise NanodistillError(
            f"The optimizer state in {checkpoint} does not match this run; train into a new out_dir."
        )
    optimizer.state = tree_map_with_path(lambda path, value: saved.get(path, value), optimizer.state)
    return state


def _global_token_loss(world: Any) -> Callable[..., Any]:
    """mlx-lm's loss, weighted so that ranks' averaged gradients equal one process's on the whole batch.

    Each rank's loss is the mean over its own tokens, and mlx-lm averages the ranks' gradients: a mean of
    means, which weighs a rank's short examples like another's long ones. Scaling rank r's mean by
    n_r * N / n_total makes the average the mean over all the batch's tokens (and the reported loss with it).
    """
    import mlx.core as mx
    from mlx_lm.tuner.trainer import default_loss

    size = world.size()

    def loss(model: nn.Module, batch: mx.array, lengths: mx.array) -> tuple[mx.array, mx.array]:
        mean, ntoks = default_loss(model, batch, lengths)
        total = mx.distributed.all_sum(ntoks, group=world)
        return mean * ntoks.astype(mx.float32) * size / total.astype(mx.float32), ntoks

    return loss


def _share_resume_point(
    world: Any, model: nn.Module, optimizer: optim.Optimizer, state: TrainState, from_adapter: bool
) -> TrainState:
    """Rank 0's restored state, weights and optimizer moments on every rank (an all_sum to which the
    other ranks add zeros), so only rank 0 ever reads a checkpoint or the adapter a run starts from."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map

    lead = world.rank() == 0
    text = json.dumps(asdict(state)).encode() if lead else b""
    size = cast(int, mx.distributed.all_sum(mx.array(len(text)), stream=mx.cpu).item())
    padded = list(text) if lead else [0] * size
    shared = bytes(cast(list[int], mx.distributed.all_sum(mx.array(padded, dtype=mx.int32), stream=mx.cpu).tolist()))
    state = TrainState(**json.loads(shared.decode()))
    if not state.iteration and not from_adapter:
        return state

    def from_lead(value: Any) -> Any:
        if not isinstance(value, mx.array):
            return value
        return mx.distributed.all_sum(value if lead else mx.zeros_like(value), stream=mx.cpu)

    weights = dict(cast(list[tuple[str, Any]], tree_flatten(model.trainable_parameters())))
    model.load_weights([(k, from_lead(v)) for k, v in weights.items()], strict=False)
    optimizer.state = tree_map(from_lead, optimizer.state)
    mx.eval(model.trainable_parameters(), optimizer.state)
    return state


class _Run:
    """Per-step bookkeeping around mlx-lm's loop, in global step numbers."""

    def __init__(
        self,
        config: TrainConfig,
        model: nn.Module,
        optimizer: optim.Optimizer,
        valid_set: Any,
        out_dir: Path,
        state: TrainState,
        on_report: Callable[[dict[str, Any]], None],
        should_stop: Callable[[], bool],
        world: Any,
    ) -> None:
        self.config = config
        self.world = world
        self.lead = world.rank() == 0
        self.model = model
        self.optimizer = optimizer
        self.valid_set = valid_set
        self.out_dir = out_dir
        self.state = state
        self.on_report = on_report
        self.should_stop = should_stop
        self.start = state.iteration
        self.tokens_before = state.trained_tokens
        self.last_saved = state.iteration
        self.last_train_report = state.iteration
        self.stopped = False
        self.rates: tuple[float | None, float | None] = (None, None)

    def iterate_batches(
        self,
        dataset: Any,
        batch_size: int,
        max_seq_length: int,
        loop: bool = False,
        seed: int | None = None,
        comm_group: Any = None,
    ) -> Iterator[Any]:
        """mlx-lm's batches in a seeded order, replayed past the steps already done; ends to stop."""
        from mlx_lm.tuner.trainer import iterate_batches

        batches = iterate_batches(
            dataset, batch_size, max_seq_length, loop=loop, seed=self.config.seed, comm_group=comm_group
        )
        for _ in range(self.start):
            next(batches)
        for batch in batches:
            if not self._before_step():
                return
            yield batch
            self.state.iteration += 1

    def _before_step(self) -> bool:
        """Runs with `iteration` steps complete; False ends the loop."""
        step = self.state.iteration
        if self._stop_agreed():
            self.stopped = True
            return False
        if step % self.config.steps_per_eval == 0 and self.state.last_eval_iteration != step:
            self._validate()
            if self.state.early_stopped:
                return False
        if step % self.config.save_every == 0 and step > self.last_saved:
            self._checkpoint()
        return True

    def _stop_agreed(self) -> bool:
        """should_stop, asked of rank 0 and agreed by every rank, so all leave the loop after the same step."""
        if self.world.size() == 1:
            return self.should_stop()
        import mlx.core as mx

        flag = mx.array(int(self.lead and self.should_stop()))
        return bool(mx.distributed.all_sum(flag, stream=mx.cpu).item())

    def finish(self) -> None:
        """After mlx-lm's loop: a last validation unless cut short, a last checkpoint, loadable weights."""
        if not self.stopped and not self.state.early_stopped:
            self.state.iteration = max(self.state.iteration, self.config.iters)
            if self.state.last_eval_iteration != self.state.iteration:
                self._validate()
        if self.state.best_iteration is None:
            self._save_adapters()
        if self.last_saved != self.state.iteration:
            self._checkpoint()

    def on_train_report(self, info: dict[str, Any]) -> None:
        """mlx-lm's train report, renumbered from the resume point; its it/s assumes a full interval."""
        iteration = self.start + int(info["iteration"])
        steps = iteration - self.last_train_report
        self.last_train_report = iteration
        it_per_s = float(info["iterations_per_second"]) * steps / self.config.steps_per_report
        self.rates = (it_per_s, float(info["tokens_per_second"]))
        trained = self.tokens_before + int(info["trained_tokens"])
        tokens_per_step = (trained - self.state.trained_tokens) / steps if steps else None
        self.state.trained_tokens = trained
        self.state.final_train_loss = float(info["train_loss"])
        self._report("train", iteration, "train_loss", self.state.final_train_loss, tokens_per_step=tokens_per_step)

    def _validate(self) -> None:
        from mlx_lm.tuner.trainer import evaluate

        loss = evaluate(
            model=self.model,
            dataset=self.valid_set,
            batch_size=self.config.batch_size,
            num_batches=self.config.val_batches,
            max_seq_length=self.config.max_seq_length,
        )
        self.model.train()
        state = self.state
        state.last_eval_iteration = state.iteration
        self._report("val", state.iteration, "val_loss", loss)
        if state.best_val_loss is None or loss < state.best_val_loss:
            state.best_val_loss = loss
            state.best_iteration = state.iteration
            state.evals_since_best = 0
            self._save_adapters()
            return
        state.evals_since_best += 1
        patience = self.config.early_stopping_patience
        state.early_stopped = patience is not None and state.evals_since_best >= patience

    def _save_adapters(self) -> None:
        """Replace out_dir/adapters.safetensors by the current weights, never leaving it half-written."""
        import mlx.core as mx

        if not self.lead:
            return
        tmp = self.out_dir / f".tmp-{ADAPTERS_FILE}"
        mx.save_safetensors(str(tmp), _trainable_weights(self.model))
        tmp.replace(self.out_dir / ADAPTERS_FILE)

    def _checkpoint(self) -> None:
        from mlx.utils import tree_flatten

        self.last_saved = self.state.iteration
        if not self.lead:
            return
        optimizer_state = dict(cast(list[tuple[str, Any]], tree_flatten(self.optimizer.state)))
        save_checkpoint(self.out_dir / "checkpoints", self.state, _trainable_weights(self.model), optimizer_state)

    def _report(self, kind: str, iteration: int, loss_key: str, loss: float, **extra: Any) -> None:
        import mlx.core as mx

        it_per_s, tokens_per_s = self.rates
        remaining = self.config.iters - iteration
        report: dict[str, Any] = {
            "kind": kind,
            "iteration": iteration,
            loss_key: loss,
            "learning_rate": float(cast(Any, self.optimizer.learning_rate).item()),
            "iterations_per_second": it_per_s,
            "tokens_per_second": tokens_per_s,
            "trained_tokens": self.state.trained_tokens,
            "peak_memory_gb": mx.get_peak_memory() / 1e9,
            "eta_s": remaining / it_per_s if it_per_s else None,
            **extra,
        }
        if self.world.size() > 1:
            report["ranks"] = self.world.size()
        self.state.reports.append(report)
        self.on_report(report)


def _reporter(run: _Run) -> Any:
    """A TrainingCallback (defined here so mlx-lm is imported only when training) feeding `run`."""
    from mlx_lm.tuner.callbacks import TrainingCallback

    class Reporter(TrainingCallback):
        def on_train_loss_report(self, train_info: dict[str, Any]) -> None:
            run.on_train_report(train_info)

    return Reporter()
