"""Dataset tools: create from seeds or files, add, list, inspect, delete, export."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from nanodistill.data.export import EXPORT_FORMATS, exists_error, export_line, write_new_file
from nanodistill.data.loaders import file_rows, inline_rows, resolve_import_path
from nanodistill.data.rows import Row
from nanodistill.errors import NanodistillError
from nanodistill.reach import checked_path
from nanodistill.store import datasets as ds
from nanodistill.store.db import new_id
from nanodistill.views import DatasetDetail, DatasetSummary, dataset_detail, dataset_summary
from tools._common import ADDITIVE, DESTRUCTIVE, READ_ONLY, register_tools, runtime
from tools._roots import ClientRoots, request_settings


class DatasetWriteResult(BaseModel):
    dataset: str
    added: int = Field(description="Rows stored by this call.")
    duplicates_removed: int = Field(description="Exact duplicates (same input and output) dropped.")
    held_out: int = Field(default=0, description="Seeds set aside for evaluation; never used for training.")
    total_examples: int


class DatasetList(BaseModel):
    datasets: list[DatasetSummary]
    next_cursor: str | None = Field(None, description="Pass as cursor to get the next page; null at the end.")


class DeleteResult(BaseModel):
    deleted: str
    examples_removed: int


class ExportResult(BaseModel):
    dataset: str
    format: str
    path: str
    rows: int


def _rows_from(examples: list[dict[str, Any]] | None, path: str | None, roots: Sequence[Path]) -> Iterator[Row]:
    if (examples is None) == (path is None):
        raise NanodistillError(
            "Give exactly one of 'examples' (a list of {input, output} objects) or 'path' (a JSON, JSONL or CSV file)."
        )
    if examples is not None:
        if not isinstance(examples, list):
            raise NanodistillError("'examples' must be a list of {input, output} objects.")
        if not examples:
            raise NanodistillError("'examples' is empty. Give at least one {input, output} object.")
        return inline_rows(examples)
    assert path is not None
    return file_rows(resolve_import_path(path, roots))


def _require_rows(added: ds.AddResult, path: str | None) -> None:
    if added.added + added.duplicates == 0:
        raise NanodistillError(f"'path' {path!r} holds no examples; give a file with at least one row.")


async def create_dataset(
    name: str,
    ctx: Context,
    examples: list[dict[str, Any]] | None = None,
    path: str | None = None,
    instruction: str = "",
    description: str = "",
    holdout_fraction: float | None = None,
    roots: ClientRoots = None,
) -> DatasetWriteResult:
    """Create a dataset from seed examples, inline or from a file.

    Give `examples` as [{"input": "...", "output": "..."}] (optional "reasoning" per row), or `path` to a
    .json (array), .jsonl or .csv (columns input, output[, reasoning]) file. `instruction` is the task
    description the student will be trained with (it becomes the system prompt). Exact duplicates are
    dropped and counted. `holdout_fraction` sets seeds aside for evaluation (default: 20% when there are
    10 or more seeds, else none). Next step: amplify_dataset, or distill to do everything at once.
    """
    rt = runtime(ctx)
    ds.check_name(name)
    if holdout_fraction is not None and not 0 <= holdout_fraction <= 0.5:
        raise NanodistillError(f"'holdout_fraction' must be between 0 and 0.5, got {holdout_fraction}.")
    source = "seed" if examples is not None else "imported"
    rows = _rows_from(examples, path, request_settings(ctx, roots).import_roots)
    async with rt.store.write() as db:
        dataset_id = await ds.insert_dataset(db, name, instruction=instruction, description=description)
        added = await ds.insert_examples(db, dataset_id, rows, source=source)
        _require_rows(added, path)
        held_out = ds.holdout_count(added.added, holdout_fraction)
        await ds.mark_holdout(db, dataset_id, held_out)
    return DatasetWriteResult(
        dataset=name,
        added=added.added,
        duplicates_removed=added.duplicates,
        held_out=held_out,
        total_examples=added.added,
    )


async def add_examples(
    dataset: str,
    ctx: Context,
    examples: list[dict[str, Any]] | None = None,
    path: str | None = None,
    roots: ClientRoots = None,
) -> DatasetWriteResult:
    """Append examples to an existing dataset (inline `examples` or a file `path`, as in create_dataset).

    Rows identical to ones already stored are dropped and counted. Bumps the dataset's version.
    """
    rt = runtime(ctx)
    found = await ds.get_dataset(rt.store, dataset)
    source = "seed" if examples is not None else "imported"
    rows = _rows_from(examples, path, request_settings(ctx, roots).import_roots)
    async with rt.store.write() as db:
        added = await ds.insert_examples(db, found.id, rows, source=source)
        _require_rows(added, path)
        await ds.bump_version(db, found.id)
    return DatasetWriteResult(
        dataset=dataset,
        added=added.added,
        duplicates_removed=added.duplicates,
        total_examples=await ds.count_examples(runtime(ctx).store, found.id),
    )


async def list_datasets(ctx: Context, limit: int = 50, cursor: str | None = None) -> DatasetList:
    """List datasets by name, a page at a time (pass next_cursor back as cursor)."""
    if not 1 <= limit <= 500:
        raise NanodistillError(f"'limit' must be between 1 and 500, got {limit}.")
    page, next_cursor = await ds.list_datasets(runtime(ctx).store, limit, cursor)
    return DatasetList(
        datasets=[dataset_summary(dataset, count, parent) for dataset, count, parent in page], next_cursor=next_cursor
    )


async def get_dataset(dataset: str, ctx: Context, sample: int = 5, offset: int = 0) -> DatasetDetail:
    """Show one dataset: counts by source (seed / synthetic / imported) and split, lengths, and `sample`
    rows from row `offset` on (page through the rows with offset += sample)."""
    if not 0 <= sample <= 100:
        raise NanodistillError(f"'sample' must be between 0 and 100, got {sample}.")
    if offset < 0:
        raise NanodistillError(f"'offset' must be 0 or more, got {offset}.")
    return await dataset_detail(runtime(ctx).store, dataset, sample, offset)


async def delete_dataset(dataset: str, ctx: Context) -> DeleteResult:
    """Delete a dataset and all its examples. Models trained on it keep their files. Refused while a
    queued or running job reads or writes the dataset: cancel_job it first."""
    rt = runtime(ctx)
    removed = await ds.delete_dataset(rt.store, dataset)
    return DeleteResult(deleted=dataset, examples_removed=removed)


async def export_dataset(
    dataset: str,
    ctx: Context,
    format: Literal["jsonl", "chat", "completions"] = "jsonl",
    path: str | None = None,
    roots: ClientRoots = None,
) -> ExportResult:
    """Write a dataset to a JSONL file.

    Formats: `jsonl` (input/output/reasoning/split, every row), `chat` (mlx-lm / OpenAI `messages`,
    instruction as system message, reasoning as <think>...</think>) and `completions` (`prompt`/`completion`);
    the two training formats hold only training rows, never the held-out ones. Written under the
    artifacts folder unless `path` (a new .jsonl file under an allowed folder) is given.
    """
    rt = runtime(ctx)
    if format not in EXPORT_FORMATS:
        raise NanodistillError(f"'format' must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}.")
    found = await ds.get_dataset(rt.store, dataset)
    target = (
        _export_target(request_settings(ctx, roots).import_roots, path)
        if path
        else (rt.settings.artifact_dir("exports") / f"{new_id('export')}-{format}.jsonl")
    )
    splits = None if format == "jsonl" else ("train",)
    lines = (
        export_line(format, found.instruction, e.input, e.output, e.reasoning, e.split)
        async for e in ds.iter_examples(rt.store, found.id, splits)
    )
    count = await write_new_file(target, lines)
    return ExportResult(dataset=dataset, format=format, path=str(target), rows=count)


def _export_target(roots: Sequence[Path], path: str) -> Path:
    """A new .jsonl file inside the allowed folders; the folder check comes first, so nothing about a
    path outside them (a file, a symlink, a folder) shows in the error."""
    raw = Path(path).expanduser()
    if ".." in raw.parts:
        raise NanodistillError(f"'path' must not contain '..' ({path!r}). Give a direct path.")
    target = checked_path(path, roots, "path")
    given = raw if raw.is_absolute() else Path.cwd() / raw
    if given.is_symlink():  # even a dangling one: writing through it would follow it
        raise exists_error(given)
    if target.suffix.lower() != ".jsonl":
        raise NanodistillError(f"'path' {target.name!r}: exports are JSONL; give a file name ending in .jsonl.")
    if target.exists():
        raise exists_error(target)
    if not target.parent.is_dir():
        raise NanodistillError(f"'path': the folder {str(target.parent)!r} does not exist. Create it first.")
    return target


def register(app: MCPServer) -> None:
    register_tools(
        app,
        [
            (create_dataset, "Create a dataset from seed examples", ADDITIVE),
            (add_examples, "Add examples to a dataset", ADDITIVE),
            (list_datasets, "List datasets", READ_ONLY),
            (get_dataset, "Inspect a dataset", READ_ONLY),
            (delete_dataset, "Delete a dataset", DESTRUCTIVE),
            (export_dataset, "Export a dataset to JSONL", ADDITIVE),
        ],
    )
