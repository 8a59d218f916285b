"""One training rank: `python -m nanodistill.train.rank SPEC`, started by mlx.launch for a train job.

Every rank trains its share of each batch; none opens the store. Rank 0 appends its reports to the
launcher's `reports.jsonl`, writes which process each rank is (`ranks.json`), and ends with
`result.json` (or `error.json`, for a readable failure). It stops, with all ranks, when the launcher
asks (a `stop` file) or is gone (its process ended, e.g. killed), so no rank outlives its job.

A rank on another host (started over ssh by mlx.launch, with none of this machine's environment) reads
only its host's entries of the SPEC: the base model and data where staging put them. The launcher's
folder and pid mean something only on rank 0's machine, and only rank 0 is asked whether to stop; a
remote rank ends with its ssh session when the launcher kills mlx.launch.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

from nanodistill.errors import NanodistillError
from nanodistill.platform.teardown import exit_without_teardown
from nanodistill.train.distributed import ERROR_FILE, RANKS_FILE, REPORTS_FILE, RESULT_FILE, STOP_FILE, RankSpec
from nanodistill.train.trainer import TrainConfig, run_training


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(value))
    tmp.replace(path)


def _launcher_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_rank(spec: RankSpec) -> int:
    import mlx.core as mx

    world = mx.distributed.init(strict=True, backend=spec.backend)
    rank = world.rank()
    host = spec.hosts[rank]
    ranks_dir = Path(spec.ranks_dir)
    pids = cast(list[int], mx.distributed.all_gather(mx.array([os.getpid()]), stream=mx.cpu).tolist())
    if rank == 0:
        ranks = [{"rank": r, "host": spec.hosts[r], "pid": pid} for r, pid in enumerate(pids)]
        _write_json(ranks_dir / RANKS_FILE, ranks)

    def on_report(entry: dict[str, Any]) -> None:
        if rank == 0:
            with (ranks_dir / REPORTS_FILE).open("a") as f:
                f.write(json.dumps(entry) + "\n")

    def should_stop() -> bool:
        return (ranks_dir / STOP_FILE).exists() or not _launcher_alive(spec.launcher_pid)

    config = TrainConfig.model_validate({**spec.config, "base_model": spec.base_model[host]})
    try:
        result = run_training(
            config, Path(spec.data_dir[host]), Path(spec.out_dir), on_report=on_report, should_stop=should_stop
        )
    except NanodistillError as exc:
        if rank == 0:
            _write_json(ranks_dir / ERROR_FILE, {"error": str(exc)})
        print(f"rank {rank} on {host}: {exc}", file=sys.stderr)
        return 1
    if rank == 0:
        _write_json(ranks_dir / RESULT_FILE, {**asdict(result), "adapter_path": str(result.adapter_path)})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m nanodistill.train.rank SPEC (started by a train job's mlx.launch)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s rank: %(message)s")
    exit_without_teardown(run_rank(RankSpec.decoded(args[0])))


if __name__ == "__main__":
    sys.exit(main())
