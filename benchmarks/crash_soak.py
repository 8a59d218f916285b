"""Crash soak: `kill -9` job processes and the server at random moments, resume concurrently, and check
that every job still ends exactly where a clean run ends.

Two real `python -m server.main` stdio processes share one NANODISTILL_HOME (a temp dir), so resumes
race across processes as well as within one. Three jobs run at once: an amplify (seeds -> teacher ->
dataset), a train (the tiny student on a stored dataset) and a distill (amplify -> train -> evaluate in
one process). The teacher is the stand-in server on 127.0.0.1, priced per token so cost is counted; the
student is the tiny random-weight model, trained with save_every 5 so a resume continues from a
checkpoint.

1. clean: the three jobs, no kills: the baseline for teacher calls and cost (same invocation).
2. soak: the same jobs on a fresh home, `--kills` SIGKILLs in all. About 30% go to the servers, at
   random times (a server dies holding a get_job long-poll; a new one starts on the same home). The
   rest are shared over the three jobs, each at random points of its progress (seeded RNG), so kills
   land mid-amplification, mid-training (between checkpoints), between a distill's stages and in its
   evaluation: the job's process (pid from the jobs table) is killed, followed until its stale
   heartbeat has it marked `interrupted`, then resumed by a burst of concurrent `resume_job` calls
   split over both servers, with a `get_job` from each in the same burst: exactly one resume is
   accepted, the others are refused as "cannot be resumed". After a server kill the burst goes to a
   live job: all refused. A job that ends before its kill points hands its kills to the servers.

Checks: every job `succeeded`; the amplified datasets hold exactly the clean run's rows, the target
reached (not stopped early) and no duplicate input; both models exist with every iteration done; each
job ran 1 + accepted resumes attempts and recorded one success; teacher calls at most 1.15x the clean
run; total cost (the top-level jobs' cost_usd) within max_cost_usd; `PRAGMA integrity_check` ok.
Reported too: network calls the cost ledger never saw (replies lost with a killed process, which a
real provider bills anyway).

NANODISTILL_FAST_BLAS=0: each fresh home would otherwise build the BLAS shim in the background, taking
CPU from the jobs being timed (the fast path has its own benchmark). Ends with one JSON line; exits 0
whether or not the goals are met, non-zero only if the soak itself broke.

    python benchmarks/crash_soak.py [--kills 12] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult

from nanodistill.testing.teacher_server import TeacherServer, start_teacher_server
from nanodistill.testing.tiny_student import build_tiny_student
from nanodistill.testing.toy_sentiment import INSTRUCTION
from nanodistill.testing.toy_sentiment import examples as toy_examples

NAME = "crash_soak"
REPO = Path(__file__).absolute().parents[1]
CALLS_RATIO_MAX = 1.15
MAX_COST_USD = 0.1  # per job; the clean run spends about half that for both
PRICE_PER_TOKEN = 1e-6
TEACHER_LATENCY_S = 0.3  # slows amplification so kills land mid-stage
CONCURRENCY = 2
AMPLIFY_TARGET = 60
DISTILL_TARGET = 48
TRAIN_ITERS = 80
DISTILL_ITERS = 40
TRAINING: dict[str, Any] = {
    "num_layers": -1,
    "learning_rate": 3e-4,
    "batch_size": 4,
    "max_seq_length": 128,
    "reasoning": "none",
    "steps_per_eval": 20,
    "save_every": 5,
}
RESUMES_PER_BURST = 4
SERVER_KILL_SHARE = 0.3
SERVER_GAP_S = (2.0, 8.0)
KILL_AFTER, KILL_BEFORE = 0.05, 0.85  # progress fractions between which a job is killed
TICK_S = 0.3
JOB_LIMIT_S = 420.0  # a job that has not ended by then never will
CALL_TIMEOUT_S = 60.0
ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled", "interrupted")


class SoakBroke(Exception):
    """The soak itself could not go on (a server that will not start, a tool that should not fail)."""


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(part, "text", "") for part in result.content)


class Server:
    """One stdio server process on the shared home: started through `sh -c 'echo $$ > pidfile; exec ...'`
    so its pid is known on any POSIX system, and SIGKILLed by that pid."""

    def __init__(self, name: str, home: Path, roots: Path) -> None:
        self.name = name
        self.home = home
        self.roots = roots
        self.pidfile = home.parent / f"server-{name}.pid"
        self.pid = 0
        self.client: Client | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.pidfile.unlink(missing_ok=True)
        params = StdioServerParameters(
            command="/bin/sh",
            args=["-c", 'echo $$ > "$0" && exec "$1" -m server.main', str(self.pidfile), sys.executable],
            env={
                "NANODISTILL_HOME": str(self.home),
                "NANODISTILL_IMPORT_ROOTS": str(self.roots),
                "NANODISTILL_FAST_BLAS": "0",
                "PYTHONPATH": str(REPO),
            },
            cwd=str(self.roots),
        )
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._serve(params, ready))
        await ready
        self.pid = int(self.pidfile.read_text())

    async def _serve(self, params: StdioServerParameters, ready: asyncio.Future[None]) -> None:
        """Hold the client in a task of its own: the SDK's cancel scopes must close in the task and order
        they opened, and servers here stop and start in any order."""
        try:
            async with Client(params, read_timeout_seconds=CALL_TIMEOUT_S) as client:
                self.client = client
                ready.set_result(None)
                await self._stop.wait()
        except Exception as exc:  # a killed server's transport ends with errors; only a failed start counts
            if not ready.done():
                ready.set_exception(exc)
        finally:
            self.client = None

    async def kill(self, rng: random.Random, follow_job: str) -> None:
        """SIGKILL the server while it holds a get_job long-poll, then drop the dead connection."""
        poll = asyncio.ensure_future(self.tool("get_job", job_id=follow_job, wait_s=5))
        await asyncio.sleep(rng.uniform(0.0, 0.5))
        os.kill(self.pid, signal.SIGKILL)
        with suppress(Exception):
            await asyncio.wait_for(poll, 10)
        await self.close()

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def tool(self, tool: str, /, **arguments: Any) -> CallToolResult:
        """A tool call as it came back, result or error."""
        assert self.client is not None, f"server {self.name} is not running"
        return await self.client.call_tool(tool, arguments)

    async def call(self, tool: str, /, **arguments: Any) -> dict[str, Any]:
        """A tool call that must succeed."""
        result = await self.tool(tool, **arguments)
        if result.is_error or result.structured_content is None:
            raise SoakBroke(f"{tool} failed on server {self.name}: {text_of(result)[:500]}")
        return result.structured_content


@dataclass
class Job:
    kind: str
    id: str
    kill_at: list[float] = field(default_factory=list)  # progress fractions still to kill at, ascending
    kills: int = 0
    resumes_accepted: int = 0
    killed_in: list[str] = field(default_factory=list)
    awaiting_interrupt: bool = False


@dataclass
class Phase:
    """What one run did and what it ended with."""

    jobs: dict[str, Job] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    job_kills: int = 0
    server_kills: int = 0
    bursts: int = 0
    resumes_accepted: int = 0
    resumes_refused: int = 0
    bad_bursts: list[str] = field(default_factory=list)
    odd_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    teacher_calls: int = 0
    calls_by_kind: Counter[str] = field(default_factory=Counter)
    ledger_calls: int = 0
    cost_usd: float = 0.0
    datasets: dict[str, int] = field(default_factory=dict)
    reports_redone: dict[str, int] = field(default_factory=dict)
    integrity: str = ""
    wall_s: float = 0.0

    def job_wall_s(self) -> dict[str, float]:
        """Each job's life, queued to finished, kills and waits included."""
        return {
            kind: round((view["finished_at"] or view["created_at"]) - view["created_at"], 1)
            for kind, view in self.views.items()
        }


def db_rows(home: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(home / "nanodistill.db", timeout=30) as db:
        return db.execute(sql, params).fetchall()


def job_pid(home: Path, job_id: str) -> int | None:
    rows = db_rows(home, "SELECT pid FROM jobs WHERE id = ?", (job_id,))
    return rows[0][0] if rows else None


def job_moment(home: Path, job_id: str) -> str:
    """Where the job was when it was killed: its stage, or its running stage's."""
    rows = db_rows(
        home,
        "SELECT kind, COALESCE(stage, status) FROM jobs WHERE (id = ? OR parent_id = ?) AND status = 'running' "
        "ORDER BY parent_id IS NULL",
        (job_id, job_id),
    )
    return f"{rows[0][0]}: {rows[0][1]}" if rows else "starting"


async def start_jobs(server: Server, teacher: TeacherServer, student: Path) -> dict[str, Job]:
    """The three jobs, started at once, with the same arguments in both runs."""
    priced = {
        "teacher": teacher.model,
        "api_base": teacher.url,
        "concurrency": CONCURRENCY,
        "max_cost_usd": MAX_COST_USD,
        "input_cost_per_token": PRICE_PER_TOKEN,
        "output_cost_per_token": PRICE_PER_TOKEN,
    }
    await server.call(
        "create_dataset", name="seeds", examples=toy_examples(12, seed=2, balanced=True), instruction=INSTRUCTION
    )
    await server.call("create_dataset", name="reviews", examples=toy_examples(70, seed=3), instruction=INSTRUCTION)
    amplify = await server.call("amplify_dataset", dataset="seeds", target_size=AMPLIFY_TARGET, **priced)
    train = await server.call(
        "train_student", dataset="reviews", base_model=str(student), name="trained", iters=TRAIN_ITERS, **TRAINING
    )
    distill = await server.call(
        "distill",
        name="toy",
        seeds=toy_examples(12, seed=1, balanced=True),
        instruction=INSTRUCTION,
        student=str(student),
        target_size=DISTILL_TARGET,
        training={**TRAINING, "iters": DISTILL_ITERS},
        **priced,
    )
    return {
        "amplify": Job("amplify", amplify["job"]["id"]),
        "train": Job("train", train["id"]),
        "distill": Job("distill", distill["id"]),
    }


async def status_of(server: Server, job_id: str, wait_s: float = 0) -> dict[str, Any]:
    return await server.call("get_job", job_id=job_id, wait_s=wait_s)


async def resume_burst(phase: Phase, servers: list[Server], job: Job) -> None:
    """RESUMES_PER_BURST concurrent resume_job calls split over the servers, with a get_job from each in
    the same burst; one must be accepted when the job was resumable, none when it was not."""
    before = (await status_of(servers[0], job.id))["status"]
    calls = [servers[i % len(servers)].tool("resume_job", job_id=job.id) for i in range(RESUMES_PER_BURST)]
    calls += [server.tool("get_job", job_id=job.id) for server in servers]
    outcomes = (await asyncio.gather(*calls))[:RESUMES_PER_BURST]
    accepted = sum(not o.is_error for o in outcomes)
    refused = [text_of(o) for o in outcomes if o.is_error]
    phase.bursts += 1
    phase.resumes_accepted += accepted
    phase.resumes_refused += sum("cannot be resumed" in t for t in refused)
    phase.odd_errors += [t[:300] for t in refused if "cannot be resumed" not in t]
    job.resumes_accepted += accepted
    expected = 1 if before == "interrupted" else 0
    if accepted != expected:
        phase.bad_bursts.append(f"{job.kind} was {before}: {accepted} resumes accepted, expected {expected}")


async def kill_job(phase: Phase, home: Path, job: Job, fraction: float) -> bool:
    """SIGKILL the job's process (a distill's stages die with it); False when it had just ended."""
    pid = job_pid(home, job.id)
    if not pid:
        return False
    moment = f"{job_moment(home, job.id)} at {fraction:.0%}"
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    job.kills += 1
    job.killed_in.append(moment)
    job.awaiting_interrupt = True
    phase.job_kills += 1
    return True


def plan_kills(jobs: list[Job], kills: int, rng: random.Random) -> int:
    """Share the kills: about SERVER_KILL_SHARE for the servers, the rest spread over the jobs, each at
    random points of its progress (before KILL_BEFORE, so it is still running). Returns the server kills."""
    servers = round(kills * SERVER_KILL_SHARE) if kills > len(jobs) else 0
    order = rng.sample(jobs, len(jobs))
    for i in range(kills - servers):
        order[i % len(order)].kill_at.append(rng.uniform(KILL_AFTER, KILL_BEFORE))
    for job in jobs:
        job.kill_at.sort()
    return servers


async def soak(phase: Phase, servers: list[Server], home: Path, kills: int, rng: random.Random) -> None:
    """Kill each job as its progress passes its next kill point, and a server at random times, until every
    planned kill landed; a job that ended with kills left hands them to the servers."""
    jobs = list(phase.jobs.values())
    server_kills = plan_kills(jobs, kills, rng)
    next_server_kill = time.monotonic() + rng.uniform(*SERVER_GAP_S)
    deadline = time.monotonic() + JOB_LIMIT_S
    while time.monotonic() < deadline:
        live = []
        for job in jobs:
            view = await status_of(servers[0], job.id)
            fraction = view["progress"]["fraction"] or 0.0
            if job.awaiting_interrupt:
                if view["status"] not in ACTIVE:  # the stale heartbeat got it marked interrupted
                    job.awaiting_interrupt = False
                    await resume_burst(phase, servers, job)
            elif view["status"] not in ACTIVE:
                server_kills += len(job.kill_at)
                job.kill_at.clear()
            elif view["status"] == "running" and job.kill_at and fraction >= job.kill_at[0]:
                if await kill_job(phase, home, job, fraction):
                    job.kill_at.pop(0)
            else:
                live.append(job)
        if phase.server_kills < server_kills and live and time.monotonic() >= next_server_kill:
            index = rng.randrange(len(servers))
            await servers[index].kill(rng, rng.choice(live).id)
            phase.server_kills += 1
            await servers[index].start()
            await resume_burst(phase, servers, rng.choice(live))
            next_server_kill = time.monotonic() + rng.uniform(*SERVER_GAP_S)
        planned = phase.server_kills < server_kills or any(j.kill_at or j.awaiting_interrupt for j in jobs)
        if not planned or not (live or any(j.awaiting_interrupt for j in jobs)):
            return
        await asyncio.sleep(TICK_S)


async def finish(phase: Phase, servers: list[Server]) -> None:
    """Follow every job to its end; one killed late and left `interrupted` is resumed like the others."""
    deadline = time.monotonic() + JOB_LIMIT_S
    for job in phase.jobs.values():
        while True:
            view = await status_of(servers[0], job.id, wait_s=10)
            if view["status"] == "interrupted" and job.awaiting_interrupt:
                job.awaiting_interrupt = False
                await resume_burst(phase, servers, job)
            elif view["status"] in TERMINAL:
                phase.views[job.kind] = view
                break
            if time.monotonic() > deadline:
                phase.problems.append(f"{job.kind} job still {view['status']} after {JOB_LIMIT_S:.0f} s")
                phase.views[job.kind] = view
                break


def dataset_problems(home: Path, name: str, target: int) -> tuple[int, list[str]]:
    """Rows of an amplified dataset (holdout copies aside) and what is wrong with them."""
    rows = db_rows(
        home,
        "SELECT e.input, e.split FROM examples e JOIN datasets d ON d.id = e.dataset_id WHERE d.name = ?",
        (name,),
    )
    inputs = [r[0] for r in rows]
    kept = sum(r[1] != "holdout" for r in rows)
    found = []
    if kept != target:
        found.append(f"{name}: {kept} rows, target {target}")
    if len(set(inputs)) != len(inputs):
        found.append(f"{name}: {len(inputs) - len(set(inputs))} duplicate inputs")
    return len(rows), found


def redone_reports(home: Path, job_id: str) -> int:
    """Training reports (every 10 iterations) for an iteration already reported. Checkpoints every 5
    iterations let a resume redo at most one report per kill; a restart from scratch redoes them all."""
    seen = redone = 0
    for (data,) in db_rows(
        home, "SELECT data FROM job_events WHERE job_id = ? AND level = 'metric' ORDER BY seq", (job_id,)
    ):
        entry = json.loads(data)
        if entry.get("kind") == "train":
            redone += entry["iteration"] <= seen
            seen = max(seen, entry["iteration"])
    return redone


async def check(phase: Phase, server: Server, home: Path) -> None:
    """Every job at its target, attempts matching accepted resumes, integrity ok."""
    for job in phase.jobs.values():
        view = phase.views[job.kind]
        if view["status"] != "succeeded":
            phase.problems.append(f"{job.kind} ended {view['status']}: {view.get('error')}")
            continue
        if view["attempts"] != 1 + job.resumes_accepted:
            phase.problems.append(f"{job.kind}: {view['attempts']} attempts for {job.resumes_accepted} resumes")
        succeeded = db_rows(
            home, "SELECT COUNT(*) FROM job_events WHERE job_id = ? AND message = 'job succeeded'", (job.id,)
        )[0][0]
        if succeeded != 1:
            phase.problems.append(f"{job.kind}: 'job succeeded' recorded {succeeded} times")
        phase.cost_usd += view["cost_usd"]
        if view["cost_usd"] > MAX_COST_USD:
            phase.problems.append(f"{job.kind}: cost {view['cost_usd']} over max_cost_usd {MAX_COST_USD}")
    result = {kind: phase.views[kind].get("result") or {} for kind in phase.jobs}
    for name, target in (("seeds-amplified", AMPLIFY_TARGET), ("toy-amplified", DISTILL_TARGET)):
        phase.datasets[name], found = dataset_problems(home, name, target)
        phase.problems += found
    for kind, amplified in (("amplify", result["amplify"]), ("distill", result["distill"].get("amplify") or {})):
        if amplified.get("stopped_reason") != "target":
            note = phase.views[kind].get("note")
            phase.problems.append(f"{kind}: amplification stopped by {amplified.get('stopped_reason')}: {note}")
    if result["train"].get("iterations_done") != TRAIN_ITERS:
        phase.problems.append(f"train: {result['train'].get('iterations_done')} iterations of {TRAIN_ITERS}")
    done = (result["distill"].get("training") or {}).get("iterations_done")
    if done != DISTILL_ITERS:
        phase.problems.append(f"distill: {done} iterations of {DISTILL_ITERS}")
    if not (result["distill"].get("report_card") or {}).get("n_test"):
        phase.problems.append("distill: no report card")
    stages = {c["kind"]: c["id"] for c in phase.views["distill"]["children"]}
    for kind, job_id in (("train", phase.jobs["train"].id), ("distill", stages.get("train"))):
        redone = redone_reports(home, job_id) if job_id else 0
        phase.reports_redone[kind] = redone
        if redone > phase.jobs[kind].kills:
            phase.problems.append(
                f"{kind}: {redone} training reports redone after {phase.jobs[kind].kills} kills: "
                "a resume did not continue from the last checkpoint"
            )
    for model in ("trained", "toy"):
        answer = await server.tool("get_model", model=model)
        adapter = (answer.structured_content or {}).get("paths", {}).get("adapter")
        if answer.is_error or not adapter or not Path(adapter).exists():
            phase.problems.append(f"model {model}: not registered with an adapter on disk ({text_of(answer)[:200]})")
    phase.ledger_calls = db_rows(home, "SELECT COUNT(*) FROM teacher_calls")[0][0]
    phase.integrity = str(db_rows(home, "PRAGMA integrity_check")[0][0])


async def run_phase(root: Path, teacher: TeacherServer, student: Path, kills: int, rng: random.Random) -> Phase:
    home = root / "home"
    phase = Phase()
    servers = [Server("a", home, root.parent), Server("b", home, root.parent)]
    started = time.monotonic()
    calls, by_kind = teacher.calls, Counter(teacher.calls_by_kind)
    try:
        for server in servers:
            await server.start()
        phase.jobs = await start_jobs(servers[0], teacher, student)
        await soak(phase, servers, home, kills, rng)
        await finish(phase, servers)
        phase.teacher_calls = teacher.calls - calls
        phase.calls_by_kind = Counter(teacher.calls_by_kind) - by_kind
        await check(phase, servers[0], home)
    finally:
        for server in servers:
            await server.close()
    phase.wall_s = time.monotonic() - started
    return phase


def report(clean: Phase, soaked: Phase, kills: int) -> dict[str, Any]:
    ratio = soaked.teacher_calls / clean.teacher_calls if clean.teacher_calls else float("inf")
    figures: dict[str, Any] = {
        "kills": soaked.job_kills + soaked.server_kills,
        "job_kills": {j.kind: j.kills for j in soaked.jobs.values()},
        "killed_in": {j.kind: j.killed_in for j in soaked.jobs.values()},
        "server_kills": soaked.server_kills,
        "resume_bursts": soaked.bursts,
        "resumes_accepted": soaked.resumes_accepted,
        "resumes_refused": soaked.resumes_refused,
        "bad_bursts": len(soaked.bad_bursts),
        "odd_resume_errors": len(soaked.odd_errors),
        "teacher_calls_clean": clean.teacher_calls,
        "teacher_calls_soak": soaked.teacher_calls,
        "teacher_calls_ratio": round(ratio, 3),
        "teacher_calls_by_kind_soak": dict(soaked.calls_by_kind),
        "teacher_calls_unrecorded_soak": soaked.teacher_calls - soaked.ledger_calls,
        "cost_usd_clean": round(clean.cost_usd, 6),
        "cost_usd_soak": round(soaked.cost_usd, 6),
        "training_reports_redone_soak": soaked.reports_redone,
        "dataset_rows_clean": clean.datasets,
        "dataset_rows_soak": soaked.datasets,
        "problems_clean": clean.problems,
        "problems_soak": soaked.problems + soaked.bad_bursts,
        "integrity": soaked.integrity,
        "job_wall_s_clean": clean.job_wall_s(),
        "job_wall_s_soak": soaked.job_wall_s(),
        "wall_s_clean": round(clean.wall_s, 1),
        "wall_s_soak": round(soaked.wall_s, 1),
    }
    goals: dict[str, Any] = {
        "kills_min": kills,
        "every_job_killed": True,
        "problems": 0,
        "teacher_calls_ratio_max": CALLS_RATIO_MAX,
        "cost_usd_max": MAX_COST_USD,
        "integrity": "ok",
    }
    met = (
        figures["kills"] >= kills
        and all(j.kills for j in soaked.jobs.values())
        and not clean.problems
        and not figures["problems_soak"]
        and not soaked.odd_errors
        and soaked.datasets == clean.datasets
        and ratio <= CALLS_RATIO_MAX
        and soaked.cost_usd <= MAX_COST_USD
        and clean.integrity == soaked.integrity == "ok"
    )
    return {"benchmark": NAME, "figures": figures, "goals": goals, "met": met}


async def run(kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="nanodistill-crash-soak-") as tmp:
        root = Path(tmp)
        student = build_tiny_student(root / "tiny")
        with start_teacher_server(latency_s=TEACHER_LATENCY_S) as teacher:
            (root / "clean").mkdir()
            clean = await run_phase(root / "clean", teacher, student, 0, rng)
            print(f"clean run: {clean.wall_s:.0f} s, {clean.teacher_calls} teacher calls", file=sys.stderr)
            (root / "soak").mkdir()
            soaked = await run_phase(root / "soak", teacher, student, kills, rng)
    for line in soaked.odd_errors[:10]:
        print(f"odd resume error: {line}", file=sys.stderr)
    return report(clean, soaked, kills)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=12, help="kill -9s in the soak (jobs and servers)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the RNG choosing gaps and targets")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.kills, args.seed))))
    sys.exit(0)


if __name__ == "__main__":
    main()
