"""Ending a process that ran MLX without the interpreter's teardown.

MLX's per-thread streams are destroyed as the worker thread that used them exits, racing the
interpreter's finalization; now and then that aborts a process whose work is already done
("terminate called without an active exception", exit 134; ml-explore/mlx#4110). Commands and job
processes that ran MLX flush what they have to say and leave with os._exit instead.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn


def mlx_loaded() -> bool:
    return "mlx.core" in sys.modules


def exit_without_teardown(code: int) -> NoReturn:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
