"""Read example rows from inline lists and JSON / JSONL / CSV files, streaming, validated.

Files are read incrementally (a JSON array too), so a 100,000-row import never holds the
whole file in memory. Paths must sit inside the allowed folders (`nanodistill.reach`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from nanodistill.data.rows import MAX_ROWS_PER_CALL, MAX_TEXT_CHARS, Row, validate_row
from nanodistill.errors import NanodistillError
from nanodistill.reach import checked_path

FILE_FORMATS = (".json", ".jsonl", ".csv")
_CHUNK = 1 << 16


def resolve_import_path(path: str, roots: Sequence[Path], field: str = "path") -> Path:
    """An absolute, existing file inside the allowed folders, or a clear error; a path outside them is
    refused before anything about it is looked at, so the error cannot tell whether it exists."""
    if not path or not path.strip():
        raise NanodistillError(f"'{field}' is empty. Give the path of a JSON, JSONL or CSV file.")
    if ".." in Path(path).parts:
        raise NanodistillError(f"'{field}' must not contain '..' ({path!r}). Give a direct path.")
    resolved = checked_path(path, roots, field)
    if not resolved.is_file():
        raise NanodistillError(f"'{field}': no file at {str(resolved)!r}. Check the path.")
    return resolved


def _limited(rows: Iterator[Row], field: str) -> Iterator[Row]:
    for count, row in enumerate(rows, start=1):
        if count > MAX_ROWS_PER_CALL:
            raise NanodistillError(f"'{field}' has more than {MAX_ROWS_PER_CALL:,} rows; add them in several calls.")
        yield row


def inline_rows(examples: list[Any]) -> Iterator[Row]:
    return _limited((validate_row(raw, f"examples[{i}]") for i, raw in enumerate(examples)), "examples")


def file_rows(path: Path) -> Iterator[Row]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = _jsonl_rows(path)
    elif suffix == ".json":
        rows = _json_array_rows(path)
    elif suffix == ".csv":
        rows = _csv_rows(path)
    else:
        raise NanodistillError(
            f"'path' {path.name!r}: unknown file type {suffix or '(none)'!r}; use .json, .jsonl or .csv."
        )
    return _limited(_utf8(rows, path), "path")


def _utf8(rows: Iterator[Row], path: Path) -> Iterator[Row]:
    """A file that is not UTF-8 text gets a readable error, not a UnicodeDecodeError."""
    try:
        yield from rows
    except UnicodeDecodeError as exc:
        raise NanodistillError(
            f"{path.name}: not UTF-8 text ({exc.reason}). Save the file with UTF-8 encoding and try again."
        ) from None


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise NanodistillError(
                    f"{path.name} line {number}: not valid JSON ({exc.msg} at column {exc.colno}). "
                    'Each line must hold one object like {"input": "...", "output": "..."}.'
                ) from None
            yield validate_row(raw, f"{path.name} line {number}")


def _json_array_rows(path: Path) -> Iterator[Row]:
    """Decode a top-level JSON array one element at a time."""
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8-sig") as handle:
        buffer = handle.read(_CHUNK)
        consumed_lines = 1
        pos = _skip_space(buffer, 0)
        if pos >= len(buffer) or buffer[pos] != "[":
            raise NanodistillError(
                f"{path.name}: a .json file must hold an array of objects ([{{...}}, ...]); "
                "use .jsonl for one object per line."
            )
        pos += 1
        index = 0
        expect_value = True
        while True:
            pos = _skip_space(buffer, pos)
            if pos >= len(buffer):
                more = handle.read(_CHUNK)
                if not more:
                    raise NanodistillError(
                        f"{path.name} line {consumed_lines + buffer.count(chr(10), 0, pos)}: the array is "
                        "not closed. The file may be truncated."
                    )
                consumed_lines += buffer.count("\n", 0, pos)
                buffer = buffer[pos:] + more
                pos = 0
                continue
            char = buffer[pos]
            if char == "]" and (not expect_value or index == 0):
                _expect_end(handle, buffer, pos + 1, path, consumed_lines)
                return
            if char == "," and not expect_value:
                expect_value = True
                pos += 1
                continue
            try:
                raw, end = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as exc:
                more = handle.read(_CHUNK)
                if more:
                    consumed_lines += buffer.count("\n", 0, pos)
                    buffer = buffer[pos:] + more
                    pos = 0
                    continue
                line = consumed_lines + buffer.count("\n", 0, exc.pos)
                raise NanodistillError(
                    f"{path.name} line {line}: not valid JSON ({exc.msg}). Fix the element after row {index}."
                ) from None
            if not expect_value:
                line = consumed_lines + buffer.count("\n", 0, pos)
                raise NanodistillError(f"{path.name} line {line}: missing ',' between array elements.")
            yield validate_row(raw, f"{path.name} row {index}")
            index += 1
            expect_value = False
            pos = end
            if pos > _CHUNK:
                consumed_lines += buffer.count("\n", 0, pos)
                buffer = buffer[pos:]
                pos = 0


def _expect_end(handle: TextIO, buffer: str, pos: int, path: Path, consumed_lines: int) -> None:
    """Only whitespace may follow the closing ']'; anything else means the file is not one array."""
    while True:
        pos = _skip_space(buffer, pos)
        if pos < len(buffer):
            line = consumed_lines + buffer.count("\n", 0, pos)
            raise NanodistillError(
                f"{path.name} line {line}: unexpected text after the closing ']'. A .json file must hold "
                "exactly one array; remove what follows it (or use .jsonl for one object per line)."
            )
        consumed_lines += buffer.count("\n")
        buffer = handle.read(_CHUNK)
        pos = 0
        if not buffer:
            return


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _csv_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        headers = [h.strip() for h in reader.fieldnames or []]
        missing = [h for h in ("input", "output") if h not in headers]
        if missing:
            raise NanodistillError(
                f"{path.name}: the CSV header must name 'input' and 'output' columns (missing: "
                f"{', '.join(missing)}; found: {', '.join(headers) or 'no header'})."
            )
        reader.fieldnames = headers
        records = iter(reader)
        while True:
            try:
                record = next(records)
            except StopIteration:
                return
            except csv.Error as exc:
                raise NanodistillError(
                    f"{path.name} line {reader.reader.line_num}: not valid CSV ({exc}). Check the quoting on "
                    f"that line; a field may hold at most {MAX_TEXT_CHARS:,} characters."
                ) from None
            raw = {k: v for k, v in record.items() if k in ("input", "output", "reasoning")}
            if raw.get("reasoning") == "":
                raw.pop("reasoning")
            yield validate_row(raw, f"{path.name} line {reader.line_num}")
