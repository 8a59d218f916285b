"""The streaming file readers: JSON arrays read a chunk at a time, JSONL and CSV line by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nanodistill.data import loaders
from nanodistill.data.loaders import file_rows, resolve_import_path
from nanodistill.data.rows import Row
from nanodistill.errors import NanodistillError


def read(path: Path) -> list[Row]:
    return list(file_rows(path))


def error(path: Path) -> str:
    with pytest.raises(NanodistillError) as info:
        read(path)
    return str(info.value)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def make_rows(n: int, width: int) -> list[dict[str, str]]:
    """Rows with long, varied, non-ASCII strings so elements straddle the reader's chunk boundaries."""
    return [
        {
            "input": f"q{i} " + ('ünïcödé {["]} ' * (width // 15 + i % 7))[:width],
            "output": f"a{i} " + "x" * (i % 13),
            **({"reasoning": f"because {i}"} if i % 3 == 0 else {}),
        }
        for i in range(n)
    ]


def as_rows(raw: list[dict[str, str]]) -> list[Row]:
    return [Row(r["input"], r["output"], r.get("reasoning")) for r in raw]


# --- JSON arrays -----------------------------------------------------------------------------------


@pytest.mark.parametrize("indent", [None, 2])
def test_json_array_elements_spanning_chunk_boundaries(tmp_path: Path, indent: int | None) -> None:
    raw = make_rows(120, 3000)
    text = json.dumps(raw, indent=indent, ensure_ascii=False)
    assert len(text) > 4 * loaders._CHUNK
    assert read(write(tmp_path, "big.json", text)) == as_rows(raw)


def test_json_array_single_element_larger_than_several_chunks(tmp_path: Path) -> None:
    raw = [
        {"input": "short", "output": "one"},
        {"input": "y" * 99_000, "output": "z" * 99_000, "reasoning": "r" * 50_000},
        {"input": "after", "output": "two"},
    ]
    text = json.dumps(raw)
    assert len(text) > 3 * loaders._CHUNK
    assert read(write(tmp_path, "huge.json", text)) == as_rows(raw)


def test_json_array_with_escapes_and_ascii_encoding(tmp_path: Path) -> None:
    raw = make_rows(60, 2500)
    raw.append({"input": 'tab\tnew\nline \\ "quote" \u2028 \U0001f600', "output": "ok"})
    text = json.dumps(raw, ensure_ascii=True)  # \uXXXX escapes may be cut by a chunk boundary too
    assert read(write(tmp_path, "esc.json", text)) == as_rows(raw)


def test_json_array_nested_braces_and_brackets_in_strings(tmp_path: Path) -> None:
    raw = [
        {"input": 'a ] } [ { " , ]]', "output": "}]"},
        {"input": '[{"input": "x"}]', "output": "{}", "reasoning": "],["},
        {"input": "{", "output": "["},
    ]
    assert read(write(tmp_path, "nested.json", json.dumps(raw))) == as_rows(raw)


def test_json_array_extra_keys_and_nested_values_are_ignored(tmp_path: Path) -> None:
    raw = [{"input": "i", "output": "o", "meta": {"tags": ["a", {"b": [1, 2]}], "s": "]}"}, "id": 7}]
    assert read(write(tmp_path, "extra.json", json.dumps(raw))) == [Row("i", "o")]


@pytest.mark.parametrize("text", ["[]", "  [ ]  ", "\n[\n\n]\n", "[]\n\n   \n"])
def test_json_empty_array(tmp_path: Path, text: str) -> None:
    assert read(write(tmp_path, "empty.json", text)) == []


@pytest.mark.parametrize("tail", [" garbage", "]", ",", "[]", ' {"input": "a", "output": "b"}', "\n\n  x"])
def test_json_trailing_garbage_is_refused(tmp_path: Path, tail: str) -> None:
    path = write(tmp_path, "trail.json", '[{"input": "a", "output": "b"}]' + tail)
    message = error(path)
    assert "trail.json" in message
    assert "after the closing ']'" in message
    assert "exactly one array" in message


def test_json_trailing_garbage_after_a_large_array_reports_its_line(tmp_path: Path) -> None:
    raw = make_rows(80, 2000)
    text = json.dumps(raw, indent=2) + "\n\n" + " " * (loaders._CHUNK + 10) + "\nextra"
    message = error(write(tmp_path, "trail.json", text))
    assert f"line {text.count(chr(10)) + 1}" in message


def test_json_trailing_whitespace_is_fine(tmp_path: Path) -> None:
    text = '[{"input": "a", "output": "b"}]' + " \n\t\r\n" * 30_000
    assert read(write(tmp_path, "ws.json", text)) == [Row("a", "b")]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[", ["not closed", "truncated"]),
        ('[{"input": "a", "output": "b"},', ["not closed", "truncated"]),
        ('[{"input": "a", "output": "b"}', ["not closed", "truncated"]),
        ('[{"input": "a", "output": "b"}, {"input": "c", "out', ["line 1", "not valid JSON", "after row 1"]),
        ('[{"input": "a", "output": "b"}, {"input": "unterminated', ["line 1", "not valid JSON"]),
    ],
)
def test_json_truncated_file(tmp_path: Path, text: str, words: list[str]) -> None:
    message = error(write(tmp_path, "cut.json", text))
    assert "cut.json" in message
    for word in words:
        assert word in message


def test_json_truncated_after_many_chunks_reports_the_right_line(tmp_path: Path) -> None:
    raw = make_rows(100, 2000)
    text = json.dumps(raw, indent=2)
    cut = text[: text.rindex('"output"') + 5]
    message = error(write(tmp_path, "cut.json", cut))
    assert f"line {cut.count(chr(10)) + 1}" in message
    assert "row 99" in message


def test_json_malformed_element_in_the_middle_reports_line_and_row(tmp_path: Path) -> None:
    raw = make_rows(100, 2000)
    text = json.dumps(raw, indent=2)
    start = text.index('"q50 ')
    broken = text[:start] + "'single quotes'" + text[start:]
    message = error(write(tmp_path, "bad.json", broken))
    assert f"line {broken.count(chr(10), 0, start) + 1}" in message
    assert "not valid JSON" in message
    assert "after row 50" in message


def test_json_missing_comma(tmp_path: Path) -> None:
    message = error(write(tmp_path, "comma.json", '[{"input": "a", "output": "b"}\n {"input": "c", "output": "d"}]'))
    assert "line 2" in message
    assert "missing ','" in message


def test_json_trailing_comma(tmp_path: Path) -> None:
    message = error(write(tmp_path, "comma.json", '[{"input": "a", "output": "b"},\n]'))
    assert "line 2" in message
    assert "not valid JSON" in message


@pytest.mark.parametrize("text", ['{"input": "a", "output": "b"}', "", "   ", '"text"', "42"])
def test_json_not_an_array(tmp_path: Path, text: str) -> None:
    message = error(write(tmp_path, "obj.json", text))
    assert "must hold an array" in message
    assert ".jsonl" in message


def test_json_element_that_is_not_an_object(tmp_path: Path) -> None:
    message = error(write(tmp_path, "els.json", '[{"input": "a", "output": "b"}, [1, 2]]'))
    assert "els.json row 1" in message
    assert "expected an object" in message
    assert "got list" in message


def test_json_rows_are_validated_with_their_index(tmp_path: Path) -> None:
    raw = [{"input": "a", "output": "b"}, {"input": "c", "output": 3}]
    message = error(write(tmp_path, "types.json", json.dumps(raw)))
    assert "row 1" in message
    assert "'output' must be a string" in message


def test_json_is_read_lazily(tmp_path: Path) -> None:
    """Rows come out one at a time: a bad row late in the file is only found when reached."""
    raw: list[object] = [{"input": f"i{n}", "output": "o"} for n in range(5)]
    raw.append("not an object")
    rows = file_rows(write(tmp_path, "lazy.json", json.dumps(raw)))
    assert [next(rows).input for _ in range(5)] == [f"i{n}" for n in range(5)]
    with pytest.raises(NanodistillError, match="row 5"):
        next(rows)


# --- encodings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bom.json", '[{"input": "a", "output": "b"}]'),
        ("bom.jsonl", '{"input": "a", "output": "b"}\n'),
        ("bom.csv", "input,output\na,b\n"),
    ],
)
def test_utf8_byte_order_mark_is_not_data(tmp_path: Path, name: str, text: str) -> None:
    """Excel's "CSV UTF-8" and Windows editors write a BOM; it must not end up in a header or break JSON."""
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert read(path) == [Row("a", "b")]


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("latin.json", '[{"input": "café", "output": "b"}]'),
        ("latin.jsonl", '{"input": "café", "output": "b"}\n'),
        ("latin.csv", "input,output\ncafé,b\n"),
    ],
)
def test_non_utf8_file_gets_a_readable_error(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("latin-1"))
    message = error(path)
    assert name in message
    assert "not UTF-8" in message
    assert "Save the file with UTF-8" in message


# --- JSONL -----------------------------------------------------------------------------------------


def test_jsonl_skips_blank_lines_and_counts_them(tmp_path: Path) -> None:
    text = '{"input": "a", "output": "b"}\n\n   \n{"input": "c", "output": "d", "reasoning": "r"}\n'
    assert read(write(tmp_path, "d.jsonl", text)) == [Row("a", "b"), Row("c", "d", "r")]
    message = error(write(tmp_path, "e.jsonl", text + "\n{oops\n"))
    assert "e.jsonl line 6" in message
    assert "not valid JSON" in message


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    message = error(write(tmp_path, "arr.jsonl", '{"input": "a", "output": "b"}\n["a", "b"]\n'))
    assert "arr.jsonl line 2" in message
    assert "expected an object" in message


def test_jsonl_windows_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'{"input": "a", "output": "b"}\r\n{"input": "c", "output": "d"}\r\n')
    assert read(path) == [Row("a", "b"), Row("c", "d")]


# --- CSV -------------------------------------------------------------------------------------------


def test_csv_with_reasoning_quotes_and_newlines(tmp_path: Path) -> None:
    text = 'input,output,reasoning,extra\n"multi\nline, with comma","say ""hi""",,x\nplain,out,why,y\n'
    assert read(write(tmp_path, "r.csv", text)) == [
        Row("multi\nline, with comma", 'say "hi"', None),
        Row("plain", "out", "why"),
    ]


def test_csv_header_whitespace_is_tolerated(tmp_path: Path) -> None:
    assert read(write(tmp_path, "h.csv", " input , output \na,b\n")) == [Row("a", "b")]


@pytest.mark.parametrize(
    ("text", "missing"),
    [("question,answer\na,b\n", "input, output"), ("input,answer\na,b\n", "output"), ("", "input, output")],
)
def test_csv_without_input_output_headers(tmp_path: Path, text: str, missing: str) -> None:
    message = error(write(tmp_path, "h.csv", text))
    assert "header must name 'input' and 'output'" in message
    assert f"missing: {missing}" in message


def test_csv_row_with_a_missing_cell(tmp_path: Path) -> None:
    message = error(write(tmp_path, "short.csv", "input,output\na,b\nc\n"))
    assert "short.csv line 3" in message
    assert "missing 'output'" in message


def test_csv_field_beyond_the_csv_module_limit(tmp_path: Path) -> None:
    """Python's csv refuses fields over 131,072 chars with csv.Error; the user sees a line and the limit."""
    message = error(write(tmp_path, "wide.csv", "input,output\na,b\n" + "x" * 200_000 + ",y\n"))
    assert "wide.csv line 3" in message
    assert "not valid CSV" in message
    assert "100,000 characters" in message


def test_csv_field_over_the_text_limit(tmp_path: Path) -> None:
    message = error(write(tmp_path, "long.csv", "input,output\n" + "x" * 100_001 + ",y\n"))
    assert "long.csv line 2" in message
    assert "'input' has 100,001 characters; the limit is 100,000" in message


# --- paths and types -------------------------------------------------------------------------------


def test_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(NanodistillError, match=r"unknown file type '\.txt'; use \.json, \.jsonl or \.csv"):
        file_rows(write(tmp_path, "rows.txt", "input,output\n"))


def test_resolve_import_path_rules(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    inside = write(root, "ok.jsonl", "")
    outside = write(tmp_path, "out.jsonl", "")
    assert resolve_import_path(str(inside), [root]) == inside
    with pytest.raises(NanodistillError, match=r"outside the allowed folders.*NANODISTILL_IMPORT_ROOTS"):
        resolve_import_path(str(outside), [root])
    with pytest.raises(NanodistillError, match=r"must not contain '\.\.'"):
        resolve_import_path(str(root / ".." / "root" / "ok.jsonl"), [root])
    with pytest.raises(NanodistillError, match="no file at"):
        resolve_import_path(str(root / "nope.jsonl"), [root])
    with pytest.raises(NanodistillError, match="no file at"):
        resolve_import_path(str(root), [root])
    with pytest.raises(NanodistillError, match="'path' is empty"):
        resolve_import_path("  ", [root])
    link = root / "link.jsonl"
    link.symlink_to(outside)
    with pytest.raises(NanodistillError, match="outside the allowed folders"):
        resolve_import_path(str(link), [root])
