"""The ``nanodistill`` command: one subcommand per entry in ``COMMANDS``.

To add one, write an ``add_arguments(parser)`` and a ``run(args) -> exit code`` and register
them under a name; heavy imports belong inside ``run``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


def _doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _doctor(args: argparse.Namespace) -> int:
    from nanodistill.doctor import doctor_report, format_doctor
    from nanodistill.settings import load_settings

    report = doctor_report(load_settings())
    print(json.dumps(report, indent=2) if args.json else format_doctor(report))
    return 0


COMMANDS: dict[str, tuple[str, AddArguments, Run]] = {
    "doctor": (
        "check this machine: versions, device, BLAS speed (stock vs fast), compiler, memory, disk",
        _doctor_arguments,
        _doctor,
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the chosen subcommand."""
    parser = argparse.ArgumentParser(
        prog="nanodistill", description="Distill ten examples into a small model."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
