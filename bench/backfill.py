"""The hourly regime: a two-day backfill under a real scheduler, next to one window and Airflow's floor.

Four measurements, each in an Airflow home of its own (a fresh SQLite metadata DB, LocalExecutor of
4 task processes, the ``buildpass_api`` pool of 4), on freshly reset emulators with their realistic
answers, latencies and BuildPass's rate limit as ``bench.py`` sets them:

- **floor**: Airflow alone. ``airflow backfill create`` of 48 hourly runs of a DAG whose one task
  does nothing (a ``@task`` returning None: one task process per run, as the copy DAG's best case).
- **pipeline backfill**: the same 48 hourly runs of ``acc_to_buildpass_photos`` over two mapped
  projects whose ~117 eligible photos are spread at random (seeded) over the 48 hours.
- **one window**: the same photos (emulators reset, seeded identically) copied as one window over the
  two days by ``airflow dags test --use-executor``, as ``bench.py`` runs its workloads.
- **acc-buildpass backfill**: the same photos through the command, over the two days, in one process
  (no scheduler, no task process).

A backfill: ``db migrate``, ``pools set``, ``dags reserialize``, ``dags unpause`` (the runs of a paused
DAG stay queued), an api-server (the Task SDK's execution API; awaited), then ``airflow backfill
create --from-date D --to-date D+2d-1s --max-active-runs 4`` (both dates inclusive: 48 runs), and only
then the scheduler and the dag-processor (SQLite takes one writer: the backfill is created first).
``[scheduler] use_job_schedule`` is off, so the scheduler makes no run of its own for the current hour
(``catchup=False`` would add one): the 48 backfill runs are all that runs. The metadata DB is polled
(``dag_run``) until the 48 runs are final. Seconds: from ``backfill create`` to the last run's
``end_date``; "polled" is the wall clock until the poll saw them final. Every process is stopped by its
process group, then any process still carrying the home's ``AIRFLOW_HOME`` is reported and killed.

Task processes: task instances that ran (``success``/``failed`` with a ``start_date``). Photos: BuildPass
read back (its admin listing, reconciled against ACC: created, duplicates, missing). Requests: the
emulators' ``/_admin/stats``. BuildPass by kind, from its per-route counts: token (``oauth/token``),
reads (``GET photo-folders``, ``GET photos``, ``photo``/``photo-folder`` by id; ``photo-folders`` counts
its GETs and POSTs together, so the folders that exist afterwards are taken as the POSTs), uploads
(``attachments/upload``, ``bulk-upload``), upserts (``bulk-upsert``, ``POST photos``), other (the rest,
folder creations among them). ACC: API requests (``photos:filter`` shown apart) against downloads.
Airflow CPU: user + sys seconds of every Airflow process of the row (from ``db migrate`` to the stop;
reaped children, so the emulators and SeaweedFS are not in it). On a shared machine both seconds and CPU
vary between runs (here by up to 2x and a third); the request counts do not. The 1-minute load average
at each row's start and end says how shared the machine was.

    .venv/bin/python bench/backfill.py                    # prints the table
    .venv/bin/python bench/backfill.py --code /tmp/old    # Airflow runs /tmp/old/plugins and /tmp/old/dags
    make bench BENCH_ARGS='--only backfill'               # the same, written into bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from acc_buildpass import settings
from acc_buildpass.config import PipelineConfig
from sandbox.stack import BP_PROJECT, BUILDER, DAG_ID, ROOT, Stack, _stop, _wait, executor_settings, free_ports

import bench

START = bench.START  # D: the backfill covers [D, D + 2 days)
HOURS = 48
END = START + timedelta(hours=HOURS)
PARALLELISM = 4  # LocalExecutor task processes
MAX_ACTIVE_RUNS = 4
POOL_SLOTS = 4
TIMEOUT = 1200.0  # seconds a backfill may take before the bench gives up
SECOND_BP_PROJECT = "proj_bench_b"
# ACC project -> (BuildPass project, photos seeded, deleted, videos): 60 + 57 = 117 eligible.
PROJECTS = {
    "3f6b2a10-8c4d-4e2f-9a1b-5d7e9f0a2c41": (BP_PROJECT, 63, 2, 1),
    "9d1e4c7a-2b5f-4a8e-b3c6-0f2a4d6e8b13": (SECOND_BP_PROJECT, 59, 1, 1),
}
FLOOR_DAG_ID = "bench_backfill_floor"
FLOOR_DAG = f'''"""Airflow's floor for the backfill bench: one task that does nothing, on the copy DAG's timetable."""
import pendulum
from airflow.sdk import dag, task
from airflow.timetables.interval import CronDataIntervalTimetable


@dag(
    dag_id="{FLOOR_DAG_ID}",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs={MAX_ACTIVE_RUNS},
)
def {FLOOR_DAG_ID}():
    @task
    def nothing() -> None:
        return None

    nothing()


{FLOOR_DAG_ID}()
'''
FINAL = ("success", "failed")
SECTION = "## The hourly regime: a two-day backfill under a real scheduler"


@dataclass
class Row:
    name: str
    runs: Counter[str]
    tasks: Counter[str]  # "task_id state" -> task instances that ran
    seconds: float
    polled: float
    load: tuple[float, float]  # 1-minute load average at the start and at the end
    retried: int = 0  # earlier tries of task instances (task_instance_history)
    cpu: float = 0.0  # CPU seconds of the row's Airflow processes (reaped children: user + sys)
    photos: dict[str, int] = field(default_factory=dict)  # reconciliation
    bp_routes: dict[str, int] = field(default_factory=dict)
    bp_folders: int = 0
    acc_routes: dict[str, int] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)

    @property
    def task_processes(self) -> int:
        return sum(self.tasks.values())

    @property
    def bp_total(self) -> int:
        return sum(self.bp_routes.values())

    @property
    def acc_downloads(self) -> int:
        return self.acc_routes.get("oss", 0) + self.acc_routes.get("asset", 0)

    @property
    def acc_api(self) -> int:
        return sum(self.acc_routes.values()) - self.acc_downloads


# -- one Airflow home ------------------------------------------------------------------------


@dataclass
class Airflow:
    """An Airflow home of its own (fresh SQLite DB) and the processes started on it."""

    home: Path
    env: dict[str, str]
    port: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def create(
        cls, stack: Stack, home: Path, config: dict[str, Any] | None, code: Path | None, dags: Path | None = None
    ) -> Airflow:
        """Migrated, the pool set; ``code``: a checkout whose plugins/ and dags/ to run instead of this one."""
        home.mkdir(parents=True)
        (port,) = free_ports(1)
        env = {
            **stack.env(config),
            **executor_settings(port, "LocalExecutor", PARALLELISM, "bench-backfill-" + secrets.token_hex(8)),
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        }
        if code is not None:
            env["PYTHONPATH"] = str(code / "plugins")  # ahead of the editable install's path
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(code / "dags")
        if dags is not None:
            env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        airflow = cls(home, env, port)
        airflow.cli("db", "migrate")
        airflow.cli("pools", "set", settings.pool(), str(POOL_SLOTS), "BuildPass: 100 requests / 10 s per IP")
        return airflow

    @property
    def db(self) -> Path:
        return self.home / "airflow.db"

    def cli(self, *args: str) -> None:
        """One ``airflow`` command, its output appended to ``cli.log``; raises when it fails."""
        with open(self.home / "cli.log", "ab") as log:
            log.write(f"\n$ airflow {' '.join(args)}\n".encode())
            log.flush()
            rc = subprocess.run([Stack.bin("airflow"), *args], env=self.env, stdout=log, stderr=log, check=False)
        if rc.returncode:
            raise RuntimeError(f"airflow {' '.join(args)} exited {rc.returncode}; see {self.home / 'cli.log'}")

    def spawn(self, name: str, *args: str) -> None:
        with open(self.home / f"{name}.log", "wb") as log:
            command = [Stack.bin("airflow"), *args]
            self.procs[name] = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def start_api_server(self) -> None:
        import requests

        self.spawn("api-server", "api-server", "--port", str(self.port), "--host", "127.0.0.1")
        session = requests.Session()
        session.trust_env = False
        url = f"http://127.0.0.1:{self.port}/api/v2/version"
        _wait("the api-server", lambda: session.get(url, timeout=5).ok, 180, self.procs["api-server"])
        # Its task API loads on first use (5 s here): a running api-server has long paid that.
        session.get(f"http://127.0.0.1:{self.port}/execution/health", timeout=120).raise_for_status()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.home / (name + '.log')}")

    def stop(self) -> list[str]:
        """Stop every process group started here; kill and return what still runs with this home."""
        for name in reversed(list(self.procs)):
            _stop(self.procs.pop(name), 20)
        left = leftovers(self.home)
        for entry in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.split()[0]), signal.SIGKILL)
        return left

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """A read-only query of the metadata DB (short, so the scheduler's writes are not held up)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)) as conn:
            return conn.execute(sql, params).fetchall()


def leftovers(home: Path) -> list[str]:
    """'pid command' of every process whose environment has AIRFLOW_HOME=home."""
    marker = f"AIRFLOW_HOME={home}".encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{pid} {command.strip()[:120]}")
    return found


# -- what ran --------------------------------------------------------------------------------


def run_states(airflow: Airflow, dag_id: str, run_type: str) -> Counter[str]:
    rows = airflow.query(
        "SELECT state, count(*) FROM dag_run WHERE dag_id = ? AND run_type = ? GROUP BY state", dag_id, run_type
    )
    return Counter({state: n for state, n in rows})


def task_counts(airflow: Airflow, dag_id: str) -> tuple[Counter[str], int]:
    """(task instances that ran, by task id and state; earlier tries kept in the history)."""
    rows = airflow.query(
        "SELECT task_id, state, count(*) FROM task_instance WHERE dag_id = ? AND start_date IS NOT NULL "
        "AND state IN ('success', 'failed') GROUP BY task_id, state",
        dag_id,
    )
    retried = airflow.query(
        "SELECT count(*) FROM task_instance_history WHERE dag_id = ? AND start_date IS NOT NULL", dag_id
    )
    return Counter({f"{task} {state}": n for task, state, n in rows}), retried[0][0]


def last_end(airflow: Airflow, dag_id: str) -> datetime:
    (value,) = airflow.query("SELECT max(end_date) FROM dag_run WHERE dag_id = ?", dag_id)[0]
    end = datetime.fromisoformat(value)
    return end if end.tzinfo else end.replace(tzinfo=UTC)


def await_runs(airflow: Airflow, dag_id: str, timeout: float) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        states = run_states(airflow, dag_id, "backfill")
        if sum(states[s] for s in FINAL) >= HOURS:
            return states
        if time.monotonic() > deadline:
            raise RuntimeError(f"{dag_id}: runs {dict(states)} after {timeout:.0f} s; see {airflow.home}")
        airflow.check_alive()
        time.sleep(1)


# -- the three measurements ------------------------------------------------------------------


def run_backfill(airflow: Airflow, dag_id: str, name: str) -> Row:
    """Unpause, api-server, ``backfill create``, scheduler + dag-processor, await the 48 runs."""
    load = os.getloadavg()[0]
    try:
        began_at, polled, runs = drive_backfill(airflow, dag_id)
    finally:
        left = airflow.stop()
    tasks, retried = task_counts(airflow, dag_id)
    seconds = (last_end(airflow, dag_id) - began_at).total_seconds()
    return Row(name, runs, tasks, seconds, polled, (load, os.getloadavg()[0]), retried, leftovers=left)


def drive_backfill(airflow: Airflow, dag_id: str) -> tuple[datetime, float, Counter[str]]:
    """(when ``backfill create`` began, seconds until the poll saw every run final, run states)."""
    airflow.cli("dags", "reserialize")
    airflow.cli("dags", "unpause", dag_id)
    airflow.start_api_server()
    began_at = datetime.now(UTC)  # the clock of the DB's end_date, for both figures
    to_date = END - timedelta(seconds=1)
    airflow.cli(
        "backfill", "create", "--dag-id", dag_id, "--from-date", START.isoformat(), "--to-date", to_date.isoformat(),
        "--max-active-runs", str(MAX_ACTIVE_RUNS),
    )  # fmt: skip
    airflow.spawn("scheduler", "scheduler")
    airflow.spawn("dag-processor", "dag-processor")
    runs = await_runs(airflow, dag_id, TIMEOUT)
    return began_at, (datetime.now(UTC) - began_at).total_seconds(), runs


def floor(stack: Stack, root: Path, code: Path | None) -> Row:
    dags = root / "floor-dags"
    dags.mkdir(parents=True)
    (dags / f"{FLOOR_DAG_ID}.py").write_text(FLOOR_DAG)
    print(f"[backfill] floor: {HOURS} hourly runs of a DAG with one task that does nothing ...", flush=True)
    return run_backfill(Airflow.create(stack, root / "floor", None, code, dags), FLOOR_DAG_ID, "floor")


def prepare(stack: Stack, prefix: str) -> dict[str, Any]:
    """Emulators reset as bench.py does, the second BuildPass project, the photos seeded; the Variable.

    ``prefix``: the staging prefix, one per row (its ledger would otherwise make a later row copy nothing).
    """
    bench.fresh(stack)
    stack.admin("buildpass", "POST", "/_admin/projects", {"builder_id": BUILDER, "project_id": SECOND_BP_PROJECT})
    for n, (project, (_, count, deleted, videos)) in enumerate(PROJECTS.items()):
        stack.seed_acc(
            project, count=count, start=f"{START:%Y-%m-%dT%H:%M:%S}", end=f"{END:%Y-%m-%dT%H:%M:%S}",
            seed=1300 + n, deleted=deleted, videos=videos,
        )  # fmt: skip
    config = stack.config(list(PROJECTS), prefix=prefix, batch_size=PipelineConfig.batch_size)
    for entry in config["projects"]:
        entry["buildpass_project_id"] = PROJECTS[entry["acc_project_id"]][0]
    return config


def with_figures(stack: Stack, row: Row) -> Row:
    row.photos = stack.reconcile(list(PROJECTS), START, END)
    row.bp_routes = stack.admin("buildpass", "GET", "/_admin/stats")["requests"]
    row.bp_folders = len(stack.admin("buildpass", "GET", f"/_admin/folders?builder_id={BUILDER}")["folders"])
    row.acc_routes = stack.admin("acc", "GET", "/_admin/stats")["requests"]
    return row


def pipeline_backfill(stack: Stack, root: Path, code: Path | None) -> Row:
    config = prepare(stack, "bench-backfill-hourly")
    print(f"[backfill] pipeline: {HOURS} hourly runs of {DAG_ID} ...", flush=True)
    row = run_backfill(Airflow.create(stack, root / "pipeline", config, code), DAG_ID, "pipeline backfill")
    return with_figures(stack, row)


def one_window(stack: Stack, root: Path, code: Path | None) -> Row:
    """The same photos as one window: ``airflow dags test --use-executor`` (LocalExecutor of 4)."""
    config = prepare(stack, "bench-backfill-one-window")
    airflow = Airflow.create(stack, root / "one-window", config, code)
    print("[backfill] one window over the two days (airflow dags test --use-executor) ...", flush=True)
    load = os.getloadavg()[0]
    conf = json.dumps({"window_start": START.isoformat(), "window_end": END.isoformat()})
    command = ["dags", "test", DAG_ID, END.isoformat(), "-c", conf, "--use-executor"]
    try:
        airflow.start_api_server()
        began = time.monotonic()
        with open(airflow.home / "dags-test.log", "wb") as log:
            rc = subprocess.run([Stack.bin("airflow"), *command], env=airflow.env, stdout=log, stderr=log, check=False)
        seconds = time.monotonic() - began
    finally:
        left = airflow.stop()
    runs = Counter({"success" if rc.returncode == 0 else "failed": 1})
    tasks, retried = task_counts(airflow, DAG_ID)
    row = Row("one window", runs, tasks, seconds, seconds, (load, os.getloadavg()[0]), retried, leftovers=left)
    return with_figures(stack, row)


def backfill_command(stack: Stack, root: Path, code: Path | None) -> Row | None:
    """The same photos through ``acc-buildpass backfill`` over the two days: one process, no scheduler.

    Not run with ``code`` (an older checkout may not have the command)."""
    if code is not None:
        return None
    config = prepare(stack, "bench-backfill-command")
    airflow = Airflow.create(stack, root / "command", config, None)
    print("[backfill] acc-buildpass backfill over the two days ...", flush=True)
    load = os.getloadavg()[0]
    command = [Stack.bin("acc-buildpass"), "backfill", "--start", START.isoformat(), "--end", END.isoformat()]
    began = time.monotonic()
    with open(airflow.home / "backfill-command.log", "wb") as log:
        rc = subprocess.run(command, env=airflow.env, stdout=log, stderr=log, check=False)
    seconds = time.monotonic() - began
    runs = Counter({"success" if rc.returncode == 0 else "failed": 1})
    row = Row("acc-buildpass backfill", runs, Counter(), seconds, seconds, (load, os.getloadavg()[0]))
    return with_figures(stack, row)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_all(stack: Stack, code: Path | None = None) -> list[Row]:
    """The rows; ``code``: a checkout whose plugins/ and dags/ Airflow runs (default: this one)."""
    root = stack.root / "backfill"
    rows = []
    for step in (floor, pipeline_backfill, one_window, backfill_command):
        cpu = children_cpu()
        row = step(stack, root, code)
        if row is not None:
            row.cpu = children_cpu() - cpu
            rows.append(row)
    return rows


# -- output ----------------------------------------------------------------------------------


def bp_kinds(row: Row) -> dict[str, int]:
    r = row.bp_routes
    listings = r.get("folders", 0) - row.bp_folders
    kinds = {
        "token": r.get("token", 0),
        "reads": listings + r.get("photos-list", 0) + r.get("folder", 0) + r.get("photo", 0),
        "uploads": r.get("upload", 0) + r.get("bulk-upload", 0),
        "upserts": r.get("bulk-upsert", 0) + r.get("photos-create", 0),
    }
    return {**kinds, "other": row.bp_total - sum(kinds.values())}


def cells(row: Row, floor_seconds: float | None) -> list[str]:
    ratio = f"{row.seconds / floor_seconds:.1f}x" if floor_seconds else ""
    runs = f"{sum(row.runs.values())} ({row.runs['success']} ok, {row.runs['failed']} failed)"
    load = f"{row.load[0]:.1f} → {row.load[1]:.1f}"
    wall = f"{row.seconds:.1f} ({row.polled:.0f})"
    head = [row.name, runs, str(row.task_processes), wall, ratio, f"{row.cpu:.0f}"]
    if not row.photos:
        return [*head, "", "", "", "", "", "", load]
    eligible = row.photos["expected"]
    photos = f"{row.photos['created']}/{eligible}" + (
        f" ({row.photos['duplicates']} dup, {row.photos['missing']} missing)"
        if row.photos["duplicates"] or row.photos["missing"]
        else ""
    )
    kinds = ", ".join(f"{k} {v}" for k, v in bp_kinds(row).items())
    acc = f"{row.acc_api} ({row.acc_routes.get('photos:filter', 0)} photos:filter)"
    per = row.bp_total / max(eligible, 1)
    return [*head, photos, str(row.bp_total), f"{per:.2f}", kinds, acc, str(row.acc_downloads), load]


def table(rows: list[Row]) -> list[str]:
    floor_seconds = next((r.seconds for r in rows if r.name == "floor"), None)
    lines = [
        "| run | runs | task processes | s (polled) | x floor | Airflow CPU s | photos created/eligible "
        "| BuildPass req | BuildPass req/photo | BuildPass by kind | ACC API req | ACC downloads "
        "| load 1 min (start → end) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    return lines + ["| " + " | ".join(cells(r, floor_seconds)) + " |" for r in rows]


def hours_with_photos(stack: Stack) -> tuple[int, int]:
    """(hours with at least one eligible photo, project-hours with at least one), as seeded now."""
    from acc_buildpass.models import parse_time

    project_hours = set()
    for project in PROJECTS:
        for p in stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]:
            if not p.get("deletedAt") and p.get("mediaType") != "VIDEO":
                project_hours.add((project, parse_time(p["createdAt"]).replace(minute=0, second=0, microsecond=0)))
    return len({hour for _, hour in project_hours}), len(project_hours)


def details(rows: list[Row], hours: tuple[int, int]) -> list[str]:
    lines = [
        f"Seeded: {hours[0]} of {HOURS} hours hold eligible photos ({HOURS - hours[0]} empty); "
        f"{hours[1]} of {HOURS * len(PROJECTS)} project-hours.",
        "",
    ]
    for row in rows:
        tasks = ", ".join(f"{k} {v}" for k, v in sorted(row.tasks.items()))
        lines.append(f"- {row.name}: task processes by task: {tasks}; earlier tries: {row.retried}.")
        if row.photos:
            lines.append(f"  BuildPass against ACC: {json.dumps(row.photos)}.")
        if row.bp_routes:
            lines.append(f"  BuildPass by route: {json.dumps(row.bp_routes, sort_keys=True)}; folders created: "
                         f"{row.bp_folders}. ACC by route: {json.dumps(row.acc_routes, sort_keys=True)}.")  # fmt: skip
        lines.append(f"  Processes left after the stop: {row.leftovers or 'none'}.")
    return lines


def section(rows: list[Row], hours: tuple[int, int]) -> list[str]:
    return [
        SECTION,
        "",
        f"`airflow backfill create` of {HOURS} hourly runs under a real scheduler (LocalExecutor of {PARALLELISM} "
        f"task processes, `--max-active-runs {MAX_ACTIVE_RUNS}`, pool `{settings.pool()}` of {POOL_SLOTS}, SQLite, "
        "an api-server and a dag-processor), next to the same photos copied as one window (`airflow dags test "
        "--use-executor`) and to Airflow's floor (the same runs of a DAG with one task that does nothing). "
        f"Two mapped projects, photos spread at random over the {HOURS} hours. Seconds: `backfill create` to the "
        "last run's end (polled: until the poll saw every run final); for one window, the `dags test` process. "
        "Airflow CPU: user + sys seconds of the row's Airflow processes. Seconds and CPU vary between runs on a "
        "shared machine (the load column); request counts do not. How it is measured: `bench/backfill.py`.",
        "",
        *table(rows),
        "",
        *details(rows, hours),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", default=str(ROOT / ".bench"))
    parser.add_argument("--code", type=Path, help="a checkout whose plugins/ and dags/ to run (default: this one)")
    args = parser.parse_args(argv)
    with Stack.start(Path(args.dir), seed=5) as stack:
        rows = run_all(stack, args.code.resolve() if args.code else None)
        hours = hours_with_photos(stack)
    print("\n".join(section(rows, hours)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
