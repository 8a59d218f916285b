"""The job process: `python -m nanodistill.worker JOB_ID KIND`, started detached by `jobs.process`.

It looks the kind up in the table of kinds, gives MLX kinds the fast BLAS (a re-exec), runs the
job, and ends without interpreter teardown once MLX ran (its thread teardown can abort a
finished process).
"""

from __future__ import annotations

import logging
import sys

import anyio

from nanodistill.jobs.run import run_job
from nanodistill.kinds import KINDS
from nanodistill.platform.teardown import exit_without_teardown, mlx_loaded
from nanodistill.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[1] not in KINDS:
        print(f"usage: python -m nanodistill.worker JOB_ID KIND (KIND: {', '.join(KINDS)})", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kind = KINDS[args[1]]
    if kind.mlx:
        from nanodistill.platform.blas import reexec_with_fast_blas

        reexec_with_fast_blas(load_settings())
    code = anyio.run(run_job, args[0], kind)
    if mlx_loaded():
        exit_without_teardown(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
