"""The `train` job: dataset rows → chat data → mlx-lm training → a registered model.

Runs inside the job process. Training itself runs in a worker thread; its reports come back to
the event loop as job events, progress and metrics. A resumed job re-renders the same split
(same seed) and continues from the last checkpoint.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread

from nanodistill.errors import NanodistillError
from nanodistill.evaluate.leakage import split_leaked
from nanodistill.jobs.context import JobContext
from nanodistill.store import datasets as ds
from nanodistill.store import models as models_db
from nanodistill.store.db import Store
from nanodistill.train.data import DataSummary, TrainRow, prepare_training_data
from nanodistill.train.options import TrainOptions
from nanodistill.train.plan import TrainParams, options_of
from nanodistill.train.trainer import TrainConfig, TrainResult, iters_for_epochs, run_training


async def training_rows(
    store: Store, dataset_id: str, source: str | None = None
) -> tuple[list[TrainRow], list[str], int]:
    """Train-split rows with near-duplicates of any held-out or test input removed (the leakage check);
    `source` keeps only rows of that origin (the seed-only baseline trains on source 'seed')."""
    rows: list[TrainRow] = []
    test_inputs: list[str] = []
    async for example in ds.iter_examples(store, dataset_id):
        if example.split != "train":
            test_inputs.append(example.input)
        elif source is None or example.source == source:
            rows.append(TrainRow(example.input, example.output, example.reasoning))
    kept, dropped = split_leaked(test_inputs, [r.input for r in rows])
    return [rows[i] for i in kept], test_inputs, len(dropped)


async def prepare_rows(
    rows: list[TrainRow], *, instruction: str, options: TrainOptions, base_path: str, data_dir: Path
) -> DataSummary:
    """Chat-format train/valid files for `rows` under the options' split, off the event loop; shared by the
    train job and the evaluate job's seed-only baseline so both train on data prepared the same way."""
    return await anyio.to_thread.run_sync(
        lambda: prepare_training_data(
            rows,
            instruction=instruction,
            reasoning=options.reasoning,
            tokenizer_path=base_path,
            val_fraction=options.val_fraction,
            seed=options.seed,
            batch_size=options.batch_size,
            max_seq_length=options.max_seq_length,
            out_dir=data_dir,
        )
    )


def train_config(options: TrainOptions, base_path: str, n_train: int) -> TrainConfig:
    """The trainer's config: the options, the resolved base, and iters (as given, else from epochs)."""
    iters = options.iters or iters_for_epochs(n_train, options.batch_size, options.epochs)
    return TrainConfig(**{**options_of(options), "base_model": base_path, "iters": iters})


def fetch_hub_model(hub_id: str) -> str:
    """Download a Hugging Face id once (mlx-lm's file patterns) and return its local folder; a readable
    NanodistillError naming the id when it cannot be fetched (offline, no such repo, gated)."""
    from mlx_lm.utils import _download

    try:
        return str(_download(hub_id))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise NanodistillError(
            f"base_model {hub_id!r} could not be downloaded from the Hugging Face Hub ({type(exc).__name__}: "
            f"{reason[:300]}). Check the id and the network, or give a local model folder, a .gguf file, "
            "ollama:NAME[:TAG] or 'smollm2-135m'."
        ) from exc


async def run_train_job(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params_as(TrainParams)
    store = ctx.store
    dataset = await ds.get_dataset_by_id(store, p.dataset_id)

    await ctx.stage("resolving base model", f"resolving base model {p.base_model}")
    from nanodistill.student.imports import resolve_base_model

    base_path = await anyio.to_thread.run_sync(resolve_base_model, p.base_model, ctx.settings)
    if not Path(base_path).exists():
        base_path = await anyio.to_thread.run_sync(fetch_hub_model, base_path)

    await ctx.stage("preparing data")
    rows, test_inputs, leaked = await training_rows(store, dataset.id)
    if leaked:
        await ctx.event(
            "warning",
            f"leakage check: dropped {leaked} training rows that nearly duplicate a test input",
            {"leaked": leaked},
        )
    # With a shared folder every host reads the data there; otherwise it is staged from the job's folder.
    data_dir = Path(p.shared_folder) / "nanodistill-jobs" / ctx.id if p.shared_folder else ctx.artifacts / "data"
    summary = await prepare_rows(
        rows, instruction=dataset.instruction, options=p, base_path=base_path, data_dir=data_dir
    )
    data_info = {
        "n_train": summary.n_train,
        "n_valid": summary.n_valid,
        "n_too_long": summary.n_too_long,
        "total_tokens": summary.total_tokens,
        "max_tokens": summary.max_tokens,
        "leaked_dropped": leaked,
        "held_out_inputs": len(test_inputs),
    }
    await ctx.metrics({"data": data_info})
    if summary.n_too_long:
        await ctx.event(
            "warning",
            f"{summary.n_too_long} examples are longer than max_seq_length={p.max_seq_length} tokens and will "
            "be truncated by mlx-lm; raise max_seq_length or shorten them",
            {"examples": summary.too_long_examples},
        )
    config = train_config(p, base_path, summary.n_train).model_copy(update={"init_adapter": p.init_adapter})
    iters = config.iters

    await ctx.stage("training", f"training {config.method} for {iters} iterations on {summary.n_train} examples")
    await ctx.progress(0, iters)

    async def report(entry: dict[str, Any]) -> None:
        level_loss = entry.get("val_loss", entry.get("train_loss"))
        await ctx.event("metric", f"{entry['kind']} iteration {entry['iteration']}: loss {level_loss:.4f}", entry)
        await ctx.progress(entry["iteration"], iters)
        await ctx.metrics({f"last_{entry['kind']}": entry})

    def on_report(entry: dict[str, Any]) -> None:
        anyio.from_thread.run(report, entry)

    out_dir = ctx.artifacts / "adapter"
    if config.hosts is None:
        result = await anyio.to_thread.run_sync(
            lambda: run_training(config, data_dir, out_dir, on_report=on_report, should_stop=ctx.should_stop)
        )
    else:
        result = await _train_on_hosts(ctx, config, data_dir, out_dir, report)
    summary_metrics = {
        "iterations_done": result.iterations_done,
        "best_val_loss": result.best_val_loss,
        "best_iteration": result.best_iteration,
        "final_train_loss": result.final_train_loss,
        "trained_tokens": result.trained_tokens,
        "wall_s": round(result.wall_s, 2),
        "early_stopped": result.early_stopped,
    }
    await ctx.metrics(summary_metrics)
    if result.stopped:
        return {"stopped": "cancelled", **summary_metrics}

    await ctx.stage("registering model")
    history = [{k: r[k] for k in ("kind", "iteration", "train_loss", "val_loss") if k in r} for r in result.reports]
    params = {**options_of(p), "iters": iters}
    async with store.write() as db:
        model_id = await models_db.insert_model(
            db,
            name=p.name,
            kind="trained",
            base_model=base_path,
            method=config.method,
            dataset_id=dataset.id,
            job_id=ctx.id,
            instruction=dataset.instruction,
            reasoning=p.reasoning,
            params=params,
            metrics={
                **summary_metrics,
                "data": data_info,
                "loss_history": history,
                "tokens_per_second": _mean_tokens_per_s(result.reports),
            },
            adapter_path=str(result.adapter_path),
        )
    started_from = {"init_adapter": p.init_adapter} if p.init_adapter else {}
    return {"model_id": model_id, "model_name": p.name, **summary_metrics, **started_from}


async def _train_on_hosts(
    ctx: JobContext,
    config: TrainConfig,
    data_dir: Path,
    out_dir: Path,
    report: Callable[[dict[str, Any]], Awaitable[None]],
) -> TrainResult:
    """Train on the ranks of `hosts` (this process launches them); rank 0's reports become this job's."""
    from nanodistill.train.distributed import LOCAL_HOST, host_list, input_paths, ssh_options, train_on_hosts

    assert config.hosts is not None
    folders = ctx.settings.import_roots
    hosts = host_list(config.hosts, folders)
    base_paths, data_paths, staged = await anyio.to_thread.run_sync(
        lambda: input_paths(hosts, config.base_model, data_dir, config.shared_folder, ctx.settings)
    )
    if any(host != LOCAL_HOST for host in hosts):
        await ctx.event("info", staged)

    async def on_ranks(ranks: list[dict[str, Any]]) -> None:
        where = ", ".join(f"rank {r['rank']} on {r['host']} (pid {r['pid']})" for r in ranks)
        await ctx.event("info", f"training on {len(ranks)} ranks ({config.backend}): {where}", {"ranks": ranks})
        await ctx.metrics({"ranks": ranks})

    return await train_on_hosts(
        config,
        hosts=hosts,
        base_paths=base_paths,
        data_paths=data_paths,
        out_dir=out_dir,
        ranks_dir=ctx.artifacts / "ranks",
        folders=folders,
        ssh=ssh_options(ctx.settings),
        on_report=report,
        on_ranks=on_ranks,
        should_stop=ctx.should_stop,
    )


def _mean_tokens_per_s(reports: list[dict[str, Any]]) -> float | None:
    speeds = [r["tokens_per_second"] for r in reports if r.get("kind") == "train" and r.get("tokens_per_second")]
    return round(sum(speeds) / len(speeds), 1) if speeds else None
