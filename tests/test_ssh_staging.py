"""Staging training inputs to another host and checking hosts, against a real sshd on 127.0.0.1.

The server (tests/sshd.py) is Debian's openssh-server with its own host key and one authorised
client key; the host alias `stagehost` in its ssh config reaches it, so the code under test runs
the system's `ssh` exactly as it would against a training machine.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nanodistill.errors import NanodistillError
from nanodistill.platform.hosts_check import check_hosts
from nanodistill.platform.ssh import SshOptions
from nanodistill.train.staging import stage_inputs
from tests.sshd import Sshd, run_sshd
from tests.test_cli import cli_command


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    yield from run_sshd(tmp_path_factory.mktemp("sshd"))


@pytest.fixture
def ssh(sshd: Sshd) -> SshOptions:
    return SshOptions(config_file=sshd.config_file)


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    """A model folder (nested, with a linked file like a Hugging Face snapshot) and two data files, one a
    link to a differently named file (staged under the name given)."""
    model = tmp_path / "local" / "tiny-model"
    (model / "tokenizer").mkdir(parents=True)
    (model / "config.json").write_text('{"hidden_size": 8}')
    (tmp_path / "local" / "blob").write_bytes(bytes(range(256)) * 64)
    (model / "model.safetensors").symlink_to(tmp_path / "local" / "blob")
    (model / "tokenizer" / "tokenizer.json").write_text('{"vocab": ["a", "b"]}')
    train, valid = tmp_path / "local" / "train.jsonl", tmp_path / "local" / "valid.jsonl"
    train.write_text('{"text": "one"}\n{"text": "two"}\n')
    (tmp_path / "local" / "export-1234").write_text('{"text": "three"}\n')
    valid.symlink_to(tmp_path / "local" / "export-1234")
    return [model, train, valid]


def _tree(path: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `path` (or of `path` itself), through links."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


def test_staging_copies_inputs_once_and_then_nothing(inputs: list[Path], ssh: SshOptions, tmp_path: Path) -> None:
    remote_dir = str(tmp_path / "remote")
    first = stage_inputs(["localhost", "stagehost"], inputs, ssh=ssh, remote_dir=remote_dir)

    assert first.paths["localhost"] == {path: str(path) for path in inputs}
    staged = first.paths["stagehost"]
    for path in inputs:
        assert staged[path].startswith(str(tmp_path / "remote") + "/")
        assert Path(staged[path]).name == path.name
        assert _tree(Path(staged[path])) == _tree(path)
    assert first.files_copied == 5
    assert first.bytes_copied == sum(
        file.stat().st_size for p in inputs for file in [p, *p.rglob("*")] if file.is_file()
    )
    assert first.summary().startswith("staged 5 files")

    second = stage_inputs(["localhost", "stagehost"], inputs, ssh=ssh, remote_dir=remote_dir)

    assert (second.files_copied, second.bytes_copied) == (0, 0)
    assert second.paths == first.paths
    assert second.summary() == "staged 0 files (0.0 MiB) to stagehost: all already there"
    assert not list((tmp_path / "remote").glob(".incoming*")), "the private unpack folders are removed"


def test_a_missing_input_is_named(inputs: list[Path], ssh: SshOptions, tmp_path: Path) -> None:
    gone = tmp_path / "local" / "test.jsonl"
    with pytest.raises(NanodistillError, match=r"cannot stage .*test\.jsonl: not found"):
        stage_inputs(["stagehost"], [*inputs, gone], ssh=ssh, remote_dir=str(tmp_path / "remote"))


def test_a_changed_file_stages_only_that_file(inputs: list[Path], ssh: SshOptions, tmp_path: Path) -> None:
    remote_dir = str(tmp_path / "remote")
    before = stage_inputs(["stagehost"], inputs, ssh=ssh, remote_dir=remote_dir).paths["stagehost"]
    model, train, valid = inputs
    train.unlink()
    train.write_text('{"text": "one, changed"}\n')

    after = stage_inputs(["stagehost"], inputs, ssh=ssh, remote_dir=remote_dir)

    assert (after.files_copied, after.bytes_copied) == (1, train.stat().st_size)
    moved = after.paths["stagehost"]
    assert moved[train] != before[train]
    assert Path(moved[train]).read_text() == '{"text": "one, changed"}\n'
    assert Path(before[train]).read_text() == '{"text": "one"}\n{"text": "two"}\n', (
        "a run reading the old copy keeps it"
    )
    assert (moved[model], moved[valid]) == (before[model], before[valid])


def test_a_changed_file_inside_the_model_folder_restages_the_folder(
    inputs: list[Path], ssh: SshOptions, tmp_path: Path
) -> None:
    remote_dir = str(tmp_path / "remote")
    model = inputs[0]
    before = stage_inputs(["stagehost"], [model], ssh=ssh, remote_dir=remote_dir).paths["stagehost"][model]
    (model / "config.json").write_text('{"hidden_size": 16}')

    after = stage_inputs(["stagehost"], [model], ssh=ssh, remote_dir=remote_dir)

    assert after.files_copied == 3
    assert after.paths["stagehost"][model] != before
    assert _tree(Path(after.paths["stagehost"][model])) == _tree(model)


def test_a_copy_that_does_not_match_is_never_taken_as_staged(
    inputs: list[Path], ssh: SshOptions, tmp_path: Path
) -> None:
    """/proc/uptime reads as text but stats as 0 bytes, so the tar carries an empty file whose sha256
    differs from the one hashed here: the host's check must refuse it and leave nothing in place."""
    if not Path("/proc/uptime").is_file():
        pytest.skip("needs Linux's /proc/uptime (a file whose size and content disagree)")
    model = inputs[0]
    (model / "uptime").symlink_to("/proc/uptime")
    remote = tmp_path / "remote"

    with pytest.raises(NanodistillError, match=r"on stagehost, .*the copy does not match the files sent"):
        stage_inputs(["stagehost"], [model], ssh=ssh, remote_dir=str(remote))

    assert [path.name for path in remote.iterdir()] == [], "no entry, no half copy, no unpack folder left"


def test_shared_folder_stages_nothing(inputs: list[Path], ssh: SshOptions, tmp_path: Path) -> None:
    staging = stage_inputs(["stagehost", "localhost"], inputs, shared_folder=tmp_path, ssh=ssh)

    assert (staging.files_copied, staging.bytes_copied) == (0, 0)
    assert staging.paths["stagehost"] == {path: str(path) for path in inputs}
    assert not (tmp_path / "remote").exists()


def test_shared_folder_refuses_a_file_outside_it(inputs: list[Path], ssh: SshOptions, tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared"
    elsewhere.mkdir()
    with pytest.raises(NanodistillError, match=r"'shared_folder'.*lies outside it") as caught:
        stage_inputs(["stagehost"], inputs, shared_folder=elsewhere, ssh=ssh)
    assert str(inputs[1]) in str(caught.value)


def test_an_unreachable_host_is_named_with_the_fix(inputs: list[Path], sshd: Sshd, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    config = tmp_path / "ssh_config"
    config.write_text(sshd.config_file.read_text().replace(str(sshd.identity_file), str(stranger)))
    wrong_key = SshOptions(config_file=config)
    with pytest.raises(NanodistillError) as caught:
        stage_inputs(["stagehost"], inputs, ssh=wrong_key, remote_dir=str(tmp_path / "remote"))
    message = str(caught.value)
    assert message.startswith("cannot reach stagehost over ssh: ")
    assert "Permission denied" in message
    assert "authorized_keys" in message

    closed = SshOptions(config_file=sshd.config_file, port=_closed_port())
    with pytest.raises(NanodistillError, match=r"cannot reach stagehost over ssh: .*Connection refused.*Start sshd"):
        stage_inputs(["stagehost"], inputs, ssh=closed)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_check_hosts_finds_the_same_versions(ssh: SshOptions) -> None:
    local, reports = check_hosts(["stagehost"], ssh, python=sys.executable, free=(1, 1))

    [report] = reports
    assert report.ok, report.problems
    for key in ("python", "mlx", "mlx_lm"):
        assert report.facts[key] == local[key]
    assert isinstance(report.facts["free_memory_bytes"], int) and report.facts["free_memory_bytes"] > 0
    assert isinstance(report.facts["free_disk_bytes"], int) and report.facts["free_disk_bytes"] > 0


def test_check_hosts_names_what_differs(ssh: SshOptions, sshd: Sshd) -> None:
    _, reports = check_hosts(["stagehost"], ssh, python=sys.executable, free=(2**62, 1))
    [report] = reports
    assert any("GiB free memory" in problem for problem in report.problems), report.problems

    closed = SshOptions(config_file=sshd.config_file, port=_closed_port())
    _, [down] = check_hosts(["stagehost"], closed)
    assert not down.ok and down.problems[0].startswith("cannot reach stagehost over ssh")


def test_doctor_hosts_command_prints_a_table(sshd: Sshd) -> None:
    command = [*cli_command(), "doctor", "--hosts", "stagehost", "--ssh-config", str(sshd.config_file)]
    proc = subprocess.run(
        [*command, "--remote-python", sys.executable], capture_output=True, text=True, timeout=300, check=False
    )
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["host", "python", "mlx", "mlx-lm"], proc.stdout + proc.stderr
    here = lines[1].split()
    there = lines[2].split()
    assert here[:2] == ["(this", "machine)"]
    assert there[0] == "stagehost"
    assert there[1:4] == here[2:5], "same python, mlx and mlx-lm on the host as here"
    assert proc.returncode == (0 if there[-1] == "ok" else 1)

    unreachable = subprocess.run(
        [*command, "--ssh-port", str(_closed_port())], capture_output=True, text=True, timeout=300, check=False
    )
    assert unreachable.returncode == 1
    assert "stagehost: cannot reach stagehost over ssh" in unreachable.stdout
