"""Getting a training run's inputs (data files, the base model folder) onto the other hosts.

Each input goes to a content-addressed path on the host, ``~/.nanodistill/staged/<sha256>/<name>``,
so a second run finds it there and copies nothing, and a changed file gets a new path (a run never
reads half of an old copy). One ssh call asks which hashes a host already holds; one more streams
the missing ones as a tar, checks every file's sha256 there, and renames each into place, so a
half-copied folder is never taken as staged. Hosts that share a folder (NFS, a synced disk) copy
nothing: the files only have to lie under it.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from nanodistill.errors import NanodistillError
from nanodistill.platform.ssh import SshOptions, is_local, quoted, run_remote, stream_to_remote
from nanodistill.reach import is_inside, local_path

STAGED_DIR = ".nanodistill/staged"  # under the remote user's home, unless the caller names a folder
CHUNK = 1 << 20

# Which sha256 tool the host has: coreutils on Linux, perl's shasum on macOS.
SUM_TOOL = 'if command -v sha256sum >/dev/null 2>&1; then sum=sha256sum; else sum="shasum -a 256"; fi'


@dataclass(frozen=True)
class StagedFile:
    """One file of an input: where it lies here, its path inside the staged entry, its content hash."""

    source: Path
    relative: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Input:
    """One local file or folder (`path` as the caller gave it) and its content address: ``<key>/<name>``
    under the staged folder."""

    path: Path
    name: str
    key: str
    files: tuple[StagedFile, ...]

    @property
    def entry(self) -> str:
        return f"{self.key}/{self.name}"


@dataclass(frozen=True)
class HostStaging:
    """What one host ended up with: each local path's path there, and what had to be copied.

    `how` is "local" (this machine), "shared" (the shared folder) or "copied" (over ssh)."""

    host: str
    how: Literal["local", "shared", "copied"]
    paths: dict[Path, str]
    files_copied: int = 0
    bytes_copied: int = 0


@dataclass(frozen=True)
class Staging:
    """The outcome for every host, with totals a job's events can quote."""

    hosts: list[HostStaging] = field(default_factory=list)

    @property
    def paths(self) -> dict[str, dict[Path, str]]:
        """host -> local path -> the path a rank on that host reads."""
        return {item.host: item.paths for item in self.hosts}

    @property
    def files_copied(self) -> int:
        return sum(item.files_copied for item in self.hosts)

    @property
    def bytes_copied(self) -> int:
        return sum(item.bytes_copied for item in self.hosts)

    def summary(self) -> str:
        """One line for the job's events, e.g. "staged 0 files (0.0 MiB) to gpu2: all already there"."""
        copied = [item.host for item in self.hosts if item.how == "copied"]
        if not copied:
            return "staged 0 files: every host reads the inputs where they are (this machine or the shared folder)"
        files = "1 file" if self.files_copied == 1 else f"{self.files_copied} files"
        text = f"staged {files} ({self.bytes_copied / 2**20:.1f} MiB) to {', '.join(copied)}"
        return text if self.files_copied else f"{text}: all already there"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files_of(root: Path) -> list[Path]:
    """Every regular file under a folder, through symlinks (a Hugging Face snapshot is all links)."""
    found: list[Path] = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs.sort()
        found.extend(Path(folder, name) for name in sorted(names) if Path(folder, name).is_file())
    return found


def _absolute(path: Path) -> Path:
    """`path` with ~ expanded, made absolute, links kept (their names are the ones mlx-lm looks for)."""
    return Path(os.path.abspath(os.path.expanduser(path)))


def hash_input(path: Path) -> Input:
    """A file's key is its sha256; a folder's is the sha256 of its sorted (path, sha256) list. The name
    is the one given (not a link's target: a linked train.jsonl stays train.jsonl)."""
    where = _absolute(path)
    if where.is_file():
        digest = _sha256(where)
        return Input(path, where.name, digest, (StagedFile(where, where.name, digest, where.stat().st_size),))
    files = tuple(
        StagedFile(file, f"{where.name}/{file.relative_to(where).as_posix()}", _sha256(file), file.stat().st_size)
        for file in _files_of(where)
    )
    if not files:
        raise NanodistillError(f"cannot stage {path}: the folder holds no files.")
    listing = "".join(f"{item.relative}\0{item.sha256}\n" for item in files)
    return Input(path, where.name, hashlib.sha256(listing.encode()).hexdigest(), files)


def _root(remote_dir: str | None) -> str:
    """The staged folder as a shell word: an absolute folder as given, else under the remote home."""
    if remote_dir is not None and remote_dir.startswith("/"):
        return quoted([remote_dir])
    return '"$HOME"/' + quoted([remote_dir or STAGED_DIR])


def _probe_script(inputs: Sequence[Input], root: str) -> str:
    """Make the staged folder, print its absolute path, then each entry already staged there."""
    return (
        f'set -e\nroot={root}\nmkdir -p "$root"\ncd "$root"\npwd -P\n'
        f"for entry in {quoted([item.entry for item in inputs])}; do\n"
        '  if [ -e "$root/$entry" ]; then printf "%s\\n" "$entry"; fi\n'
        "done\n"
    )


def _upload_script(missing: Sequence[Input], root: str) -> str:
    """Unpack a tar from stdin in a private folder, check every sha256, rename each entry into place."""
    manifest = "".join(f"{item.sha256}  ./{entry.key}/{item.relative}\n" for entry in missing for item in entry.files)
    return f"""set -e
root={root}
tmp=$(mktemp -d "$root/.incoming.XXXXXX")
trap 'cd / && rm -rf "$tmp"' EXIT
cd "$tmp"
tar -xf -
{SUM_TOOL}
cat > .manifest <<'NANODISTILL_MANIFEST'
{manifest}NANODISTILL_MANIFEST
if ! $sum -c --status .manifest; then
  echo "the copy does not match the files sent (is the disk full, or did a file change while copying?)" >&2
  exit 3
fi
for entry in {quoted([item.entry for item in missing])}; do
  mkdir -p "$root/${{entry%/*}}"
  if [ ! -e "$root/$entry" ]; then mv "$entry" "$root/$entry"; fi
done
"""


def _write_tar(missing: Sequence[Input], stream: IO[bytes]) -> None:
    with tarfile.open(fileobj=stream, mode="w|", dereference=True) as tar:
        for entry in missing:
            for item in entry.files:
                tar.add(item.source, arcname=f"{entry.key}/{item.relative}", recursive=False)


def _stage_host(host: str, inputs: Sequence[Input], ssh: SshOptions, remote_dir: str | None) -> HostStaging:
    root = _root(remote_dir)
    lines = run_remote(host, ssh, _probe_script(inputs, root)).splitlines()
    if not lines or not lines[0].startswith("/"):
        raise NanodistillError(f"{host} did not say where its staged folder is over ssh; check its login shell.")
    folder, present = lines[0], set(lines[1:])
    missing = [item for item in inputs if item.entry not in present]
    if missing:
        stream_to_remote(host, ssh, _upload_script(missing, quoted([folder])), lambda out: _write_tar(missing, out))
    return HostStaging(
        host=host,
        how="copied",
        paths={item.path: f"{folder}/{item.entry}" for item in inputs},
        files_copied=sum(len(item.files) for item in missing),
        bytes_copied=sum(file.size for item in missing for file in item.files),
    )


def _check_shared(hosts: Sequence[str], paths: Sequence[Path], shared_folder: Path, ssh: SshOptions) -> None:
    """Every input lies under the shared folder, and every remote host sees it at the same path."""
    folder = local_path(shared_folder)
    outside = [str(path) for path in paths if not is_inside(path, [folder])]
    if outside:
        raise NanodistillError(
            f"'shared_folder' is {folder}, but {', '.join(outside)} lies outside it. Put the training data "
            "and the base model under the shared folder, or leave shared_folder unset to copy them over ssh."
        )
    script = "".join(f"[ -e {quoted([str(path)])} ] || echo {quoted([str(path)])}\n" for path in paths) + "true\n"
    for host in hosts:
        unseen = run_remote(host, ssh, script).splitlines()
        if unseen:
            raise NanodistillError(
                f"'shared_folder' {folder}: {host} does not see {', '.join(unseen)}. Mount the shared folder "
                f"on {host} at the same path, or leave shared_folder unset to copy the inputs over ssh."
            )


def stage_inputs(
    hosts: Sequence[str],
    files: Sequence[Path],
    shared_folder: Path | None = None,
    ssh: SshOptions | None = None,
    remote_dir: str | None = None,
) -> Staging:
    """Put each of `files` (files or folders) on every remote host, copying only what is not there yet.

    Local hosts (localhost, 127.0.0.1) read the files where they are. `remote_dir` is the staged
    folder on the hosts (absolute, or under the remote home; default ~/.nanodistill/staged). Errors
    from every host are collected, so one call names every host that needs fixing.
    """
    options = ssh or SshOptions()
    given = list(dict.fromkeys(Path(path) for path in files))
    resolved = {path: local_path(path) for path in given}
    missing = [str(path) for path in given if not resolved[path].exists()]
    if missing:
        raise NanodistillError(
            f"cannot stage {', '.join(missing)}: not found. Export the data or import the model first."
        )
    remote = [host for host in dict.fromkeys(hosts) if not is_local(host)]
    same = {path: str(_absolute(path)) for path in given}
    local = [HostStaging(host, "local", same) for host in dict.fromkeys(hosts) if is_local(host)]
    if shared_folder is not None:
        _check_shared(remote, list(resolved.values()), shared_folder, options)
        return Staging([*local, *(HostStaging(host, "shared", same) for host in remote)])
    if not remote:
        return Staging(local)
    inputs = [hash_input(path) for path in given]
    with ThreadPoolExecutor(max_workers=min(8, len(remote))) as pool:
        futures = {host: pool.submit(_stage_host, host, inputs, options, remote_dir) for host in remote}
    errors = [str(future.exception()) for future in futures.values() if future.exception() is not None]
    if errors:
        raise NanodistillError("; ".join(errors))
    return Staging([*local, *(future.result() for future in futures.values())])
