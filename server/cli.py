"""The ``nanodistill`` command: distill, datasets, jobs, models, query, import-model, demo, doctor.

Every subcommand but ``doctor`` calls the MCP tools through an in-process session
(`server.client`), so the terminal and an assistant share one engine and one set of errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio

from nanodistill.platform.teardown import exit_without_teardown, mlx_loaded

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return
    if isinstance(data, dict):
        for key, value in data.items():
            shown = json.dumps(value, default=str) if isinstance(value, dict | list) else value
            print(f"{key}: {shown}")
    else:
        print(data)


def _run_session(work: Callable[[Any], Awaitable[int]]) -> int:
    """Run `work(client)` in an in-process MCP session; a tool error becomes a message and exit 1."""
    from server.client import ToolFailed, session

    async def main() -> int:
        async with session() as client:
            try:
                return await work(client)
            except ToolFailed as exc:  # caught here: past the session's task group it is an ExceptionGroup
                print(f"nanodistill: {exc}", file=sys.stderr)
                return 1

    return anyio.run(main)


def _json_flag(*parsers: argparse.ArgumentParser) -> None:
    """`--json` on the command (`datasets --json show X`) and on each action (`datasets show X --json`); an
    action's flag is left unset when absent, so it never resets the command's."""
    for parser in parsers:
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc}): {text!r}; e.g. '{{\"iters\": 200}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}; e.g. '{{\"iters\": 200}}'")
    return value


def _doctor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--hosts", nargs="+", metavar="HOST", help="check these training hosts over ssh instead")
    parser.add_argument("--ssh-config", type=Path, help="ssh config file for the hosts (ssh -F)")
    parser.add_argument("--ssh-port", type=int, help="ssh port of the hosts (ssh -p)")
    parser.add_argument("--identity-file", type=Path, help="private key for the hosts (ssh -i)")
    parser.add_argument("--remote-python", help="the hosts' Python (default: this interpreter's path, else python3)")


def _doctor_hosts(args: argparse.Namespace) -> int:
    from nanodistill.platform.hosts_check import check_hosts, format_hosts
    from nanodistill.platform.ssh import SshOptions

    ssh = SshOptions(config_file=args.ssh_config, port=args.ssh_port, identity_file=args.identity_file)
    local, reports = check_hosts(args.hosts, ssh, python=args.remote_python)
    if args.json:
        print(json.dumps({"local": local, "hosts": [asdict(report) for report in reports]}, indent=2))
    else:
        print(format_hosts(local, reports))
    return 0 if all(report.ok for report in reports) else 1


def _doctor(args: argparse.Namespace) -> int:
    from nanodistill.platform.doctor import doctor_report, format_doctor
    from nanodistill.settings import load_settings

    if args.hosts:
        return _doctor_hosts(args)
    report = doctor_report(load_settings())
    print(json.dumps(report, indent=2) if args.json else format_doctor(report))
    return 0


def _distill_arguments(parser: argparse.ArgumentParser) -> None:
    from nanodistill.distill.plan import DistillRequest
    from nanodistill.train.options import options_help

    defaults = {name: field.default for name, field in DistillRequest.model_fields.items()}
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "training options (keys of --training):\n" + "\n".join(
        f"  {name:<24} {text}" for name, text in options_help()
    )
    parser.add_argument("--name", required=True, help="dataset and model name")
    parser.add_argument("--seeds", required=True, help="a .json, .jsonl or .csv file of input/output pairs")
    parser.add_argument("--instruction", required=True, help="one sentence describing the task")
    parser.add_argument("--teacher", help="LiteLLM model, e.g. anthropic/claude-sonnet-4-5")
    parser.add_argument("--api-base", help="OpenAI-compatible server for the teacher")
    parser.add_argument("--api-key-env", help="environment variable holding the teacher's API key")
    parser.add_argument(
        "--student", default=defaults["student"], help=f"student base model (default {defaults['student']})"
    )
    parser.add_argument("--augment-factor", type=int, default=defaults["augment_factor"])
    parser.add_argument("--target-size", type=int)
    parser.add_argument("--holdout-fraction", type=float, default=defaults["holdout_fraction"])
    parser.add_argument("--max-cost-usd", type=float)
    parser.add_argument("--input-cost-per-token", type=float, help="USD per input token, for an unpriced teacher")
    parser.add_argument("--output-cost-per-token", type=float, help="USD per output token, for an unpriced teacher")
    parser.add_argument(
        "--training", type=_json_object, default={}, help="training options as JSON, e.g. '{\"iters\": 200}'"
    )
    parser.add_argument("--no-follow", action="store_true", help="start the job and return")


def _distill(args: argparse.Namespace) -> int:
    from server.client import call, follow

    async def work(client: Any) -> int:
        job = await call(
            client,
            "distill",
            name=args.name,
            path=args.seeds,
            instruction=args.instruction,
            teacher=args.teacher,
            api_base=args.api_base,
            api_key_env=args.api_key_env,
            student=args.student,
            augment_factor=args.augment_factor,
            target_size=args.target_size,
            holdout_fraction=args.holdout_fraction,
            max_cost_usd=args.max_cost_usd,
            input_cost_per_token=args.input_cost_per_token,
            output_cost_per_token=args.output_cost_per_token,
            training=args.training,
        )
        print(f"started distill job {job['id']}", file=sys.stderr)
        if args.no_follow:
            return 0
        job = await follow(client, job["id"])
        _print(job["result"] or {"error": job["error"]}, False)
        return 0 if job["status"] == "succeeded" else 1

    return _run_session(work)


def _datasets_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list datasets")
    show = sub.add_parser("show", help="counts, stats and sample rows of a dataset")
    show.add_argument("name")
    create = sub.add_parser("create", help="create a dataset from a file")
    create.add_argument("name")
    create.add_argument("--path", required=True)
    create.add_argument("--instruction", default="")
    export = sub.add_parser("export", help="write a dataset to JSONL")
    export.add_argument("name")
    export.add_argument("--format", default="jsonl", choices=("jsonl", "chat", "completions"))
    parser.add_argument("--json", action="store_true")
    _json_flag(listing, show, create, export)


def _datasets(args: argparse.Namespace) -> int:
    from server.client import call

    async def work(client: Any) -> int:
        if args.action == "list":
            for item in (await call(client, "list_datasets", limit=500))["datasets"]:
                print(
                    f"{item['name']:32} {item['examples']:8} examples  v{item['version']}  {item['instruction'][:50]}"
                )
        elif args.action == "show":
            _print(await call(client, "get_dataset", dataset=args.name), args.json)
        elif args.action == "create":
            _print(
                await call(client, "create_dataset", name=args.name, path=args.path, instruction=args.instruction),
                args.json,
            )
        else:
            _print(await call(client, "export_dataset", dataset=args.name, format=args.format), args.json)
        return 0

    return _run_session(work)


def _jobs_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="recent jobs")
    listing.add_argument("--status")
    actions = [listing]
    for action, text in (
        ("show", "one job"),
        ("follow", "follow a job with a live progress bar"),
        ("cancel", "cancel a job"),
        ("resume", "resume a job"),
    ):
        actions.append(sub.add_parser(action, help=text))
        actions[-1].add_argument("job_id")
    parser.add_argument("--json", action="store_true")
    _json_flag(*actions)


def _jobs(args: argparse.Namespace) -> int:
    from server.client import call, follow, progress_line

    async def work(client: Any) -> int:
        if args.action == "list":
            for job in (await call(client, "list_jobs", status=args.status, limit=50))["jobs"]:
                print(f"{job['id']}  {progress_line(job)}")
            return 0
        if args.action == "show":
            _print(await call(client, "get_job", job_id=args.job_id), args.json)
            return 0
        if args.action in ("cancel", "resume"):
            job = await call(client, f"{args.action}_job", job_id=args.job_id)
            print(progress_line(job))
            if args.action == "cancel":
                return 0
        job = await follow(client, args.job_id)
        _print(job["result"] or {"status": job["status"], "error": job["error"]}, args.json)
        return 0 if job["status"] == "succeeded" else 1

    return _run_session(work)


def _models_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    listing = sub.add_parser("list", help="list models")
    show = sub.add_parser("show", help="one model")
    show.add_argument("model")
    card = sub.add_parser("card", help="a model's report card (Markdown)")
    card.add_argument("model")
    parser.add_argument("--json", action="store_true")
    _json_flag(listing, show, card)


def _models(args: argparse.Namespace) -> int:
    from server.client import call

    async def work(client: Any) -> int:
        if args.action == "list":
            for model in (await call(client, "list_models", limit=200))["models"]:
                card = model.get("report_card") or {}
                verdict = "ready" if card.get("ready") else ("not ready" if card else "not evaluated")
                print(f"{model['id']}  {model['name']:28} {model['kind']:8} {model['base_model'][-40:]:40} {verdict}")
        elif args.action == "show":
            _print(await call(client, "get_model", model=args.model), args.json)
        else:
            found = await call(client, "get_model", model=args.model)
            result = await client.read_resource(found["resources"]["card"])
            print(result.contents[0].text)
        return 0

    return _run_session(work)


def _query_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model id or name (or a base model folder)")
    parser.add_argument("prompts", nargs="+", help="one or more prompts")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--show-reasoning", action="store_true")
    parser.add_argument("--json", action="store_true")


def _query(args: argparse.Namespace) -> int:
    from nanodistill.settings import load_settings
    from server.client import call
    from server.main import prepare_fast_blas

    prepare_fast_blas(load_settings())

    async def work(client: Any) -> int:
        result = await call(
            client,
            "query_student",
            model=args.model,
            prompts=args.prompts,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            show_reasoning=args.show_reasoning,
        )
        if args.json:
            _print(result, True)
            return 0
        for answer in result["answers"]:
            if answer.get("reasoning"):
                print(f"(thinking) {answer['reasoning']}")
            print(answer["answer"])
        return 0

    return _run_session(work)


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="a .gguf file, ollama:NAME[:TAG], smollm2-135m, or a model folder")
    parser.add_argument("--name")


def _import(args: argparse.Namespace) -> int:
    from server.client import call, follow

    async def work(client: Any) -> int:
        job = await call(client, "import_model", source=args.source, name=args.name)
        job = await follow(client, job["id"])
        _print(job["result"] or {"error": job["error"]}, False)
        return 0 if job["status"] == "succeeded" else 1

    return _run_session(work)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    parser.add_argument("--tiny", action="store_true", help="use the tiny from-scratch student (no download)")


def _demo(args: argparse.Namespace) -> int:
    from server.demo import run_demo

    return run_demo(as_json=args.json, tiny=args.tiny)


COMMANDS: dict[str, tuple[str, AddArguments, Run]] = {
    "distill": (
        "amplify, train and evaluate a student from a seeds file, following the job",
        _distill_arguments,
        _distill,
    ),
    "datasets": ("list, show, create or export datasets", _datasets_arguments, _datasets),
    "jobs": ("list, show, follow, cancel or resume jobs", _jobs_arguments, _jobs),
    "models": ("list models, show one, print its report card", _models_arguments, _models),
    "query": ("ask a model one or more prompts", _query_arguments, _query),
    "import-model": ("import a GGUF / Ollama model as a student base", _import_arguments, _import),
    "demo": ("the offline demo: a stand-in teacher and a real small student, no API key", _demo_arguments, _demo),
    "doctor": (
        "check this machine: versions, device, BLAS speed (stock vs fast), compiler, memory, disk",
        _doctor_arguments,
        _doctor,
    ),
}


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) and run the chosen subcommand."""
    parser = argparse.ArgumentParser(prog="nanodistill", description="Distill ten examples into a small model.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    code = COMMANDS[args.command][2](args)
    if argv is None and mlx_loaded():
        exit_without_teardown(code)
    return code
