"""``make distributed``: the DAG on a real CeleryExecutor deployment, on this one machine, without Docker.

PostgreSQL (metadata DB) and Redis (broker) from Debian's packages, SeaweedFS and both emulators;
then Airflow as separate processes: api-server, scheduler, dag-processor, triggerer and two Celery
workers. The DAG is unpaused and triggered through Airflow's REST API (with a token from the auth
manager), the run is awaited, BuildPass is reconciled against ACC, and the proof that batches ran
in parallel on both workers is printed. Everything started is stopped at the end.
Exit code 0 only when the run succeeded and every eligible photo is in BuildPass exactly once.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from sandbox.stack import DAG_ID, ROOT, Stack, _stop, _wait, executor_settings, free_ports

PROJECTS = {
    "5b0c1a52-7d3e-4f61-9a2b-8c4d6e0f1a23": 260,
    "c7e9f1a3-2b4d-4c6e-8f0a-1b3d5e7f9a0c": 140,
}
START = datetime(2026, 7, 6, tzinfo=UTC)
END = START + timedelta(days=1)
USER, PASSWORD = "admin", "admin-distributed"
SIMPLE_AUTH = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def ensure_packages() -> None:
    """PostgreSQL and Redis from Debian's packages when they are missing."""
    missing = []
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        missing.append("postgresql")
    if not shutil.which("redis-server"):
        missing.append("redis-server")
    if not missing:
        return
    if os.geteuid() != 0:
        raise SystemExit(f"install {' '.join(missing)} (apt-get) or run as root")
    print(f"Installing {' '.join(missing)} ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


class Deployment:
    def __init__(self, root: Path, workers: int = 2) -> None:
        self.root = root
        self.workers = workers
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pg_port, self.redis_port, self.api_port = free_ports(3)
        # As root, PostgreSQL runs as the postgres user, who may not enter the checkout (a home
        # directory is mode 700): its data and socket live in a directory of its own under /tmp.
        self.pg_home = Path(tempfile.mkdtemp(prefix="acc-buildpass-pg-")) if os.geteuid() == 0 else root
        self.pg_dir = self.pg_home / "pg"
        self.pg_bin = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
        self.pg_started = False

    # -- services ----------------------------------------------------------------------------

    def _as_postgres(self, *command: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)

    def start_postgres(self) -> None:
        self.pg_dir.mkdir(parents=True)
        sockets = self.pg_home / "pg-socket"
        sockets.mkdir()
        if os.geteuid() == 0:
            for path in (self.pg_home, self.pg_dir, sockets):
                shutil.chown(path, "postgres", "postgres")
        subprocess.run(
            self._as_postgres(
                str(self.pg_bin / "initdb"), "-D", str(self.pg_dir), "-U", "airflow", "--auth=trust", "-E", "UTF8"
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=self.pg_home,  # a directory the postgres user may enter
        )
        subprocess.run(
            self._as_postgres(
                str(self.pg_bin / "pg_ctl"),
                "-D",
                str(self.pg_dir),
                "-l",
                str(self.pg_dir / "server.log"),
                "-w",
                "-o",
                f"-p {self.pg_port} -k {sockets} -c listen_addresses=127.0.0.1 -c max_connections=200",
                "start",
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=self.pg_home,  # a directory the postgres user may enter
        )
        self.pg_started = True
        subprocess.run(
            self._as_postgres(
                str(self.pg_bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "airflow", "airflow"
            ),
            check=True,
            cwd=self.pg_home,
        )

    def start_redis(self) -> None:
        self.spawn(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        )

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            _stop(self.procs.pop(name), 20)
        if self.pg_started:
            subprocess.run(
                self._as_postgres(str(self.pg_bin / "pg_ctl"), "-D", str(self.pg_dir), "-m", "fast", "stop"),
                check=False,
                stdout=subprocess.DEVNULL,
                cwd=self.pg_home,
            )
            self.pg_started = False
        if self.pg_home != self.root:
            shutil.rmtree(self.pg_home, ignore_errors=True)

    # -- Airflow -----------------------------------------------------------------------------

    def airflow_env(self, stack: Stack, config: dict[str, Any]) -> dict[str, str]:
        home = Path(stack.env()["AIRFLOW_HOME"])
        passwords = home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({USER: PASSWORD}))
        return {
            **stack.env(config),
            **executor_settings(self.api_port, "CeleryExecutor", 16, "distributed-run-" + stack.s3_secret[:16]),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql://airflow@127.0.0.1:{self.pg_port}/airflow",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }

    def start_airflow(self, env: dict[str, str]) -> None:
        airflow = Stack.bin("airflow")
        migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, check=False)
        if migrate.returncode:
            raise SystemExit(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}")
        subprocess.run(
            [airflow, "pools", "set", "buildpass_api", "4", "BuildPass: 100 requests / 10 s per IP"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.spawn("api-server", [airflow, "api-server", "--port", str(self.api_port), "--host", "127.0.0.1"], env)
        self.spawn("scheduler", [airflow, "scheduler"], env)
        self.spawn("dag-processor", [airflow, "dag-processor"], env)
        self.spawn("triggerer", [airflow, "triggerer"], env)
        for n in range(1, self.workers + 1):
            self.spawn(
                f"worker-{n}",
                [airflow, "celery", "worker", "--celery-hostname", f"worker{n}@%h", "--concurrency", "4"],
                env,
            )


class Api:
    """Airflow's REST API with a JWT from the auth manager."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False

    def login(self) -> None:
        response = self.session.post(
            f"{self.base}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=30
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base}/api/v2{path}", timeout=60, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None


def parallel_proof(instances: list[dict[str, Any]], logs: dict[str, str]) -> tuple[int, dict[str, int]]:
    """(most mapped task instances running at one moment, tasks each worker ran)."""
    spans = []
    for ti in instances:
        if ti["task_id"] == "copy_batch" and ti.get("start_date") and ti.get("end_date"):
            spans.append((datetime.fromisoformat(ti["start_date"]), datetime.fromisoformat(ti["end_date"])))
    overlap = max((sum(1 for a, b in spans if a <= start < b) for start, _ in spans), default=0)
    per_worker = {name: text.count("Executing workload in Celery") for name, text in logs.items()}
    return overlap, per_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make distributed", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", default=str(ROOT / ".distributed"))
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args(argv)
    root = Path(args.dir).resolve()
    if root.exists():
        shutil.rmtree(root)
    ensure_packages()
    began = time.monotonic()
    print("Starting SeaweedFS and the API emulators ...", flush=True)
    with Stack.start(root / "stack", seed=9) as stack:
        for n, (project, count) in enumerate(PROJECTS.items()):
            stack.seed_acc(
                project,
                count=count,
                start=f"{START:%Y-%m-%dT%H:%M:%S}",
                end=f"{END:%Y-%m-%dT%H:%M:%S}",
                seed=300 + n,
                deleted=3,
                videos=2,
            )
        # Slow enough that batches overlap in time when they run in parallel.
        stack.admin("buildpass", "POST", "/_admin/faults", {"latency_ms": 60})
        stack.admin("acc", "POST", "/_admin/faults", {"latency_ms": 30})
        config = stack.config(list(PROJECTS), prefix="distributed", batch_size=25)
        deployment = Deployment(root)
        try:
            print("Starting PostgreSQL and Redis ...", flush=True)
            deployment.start_postgres()
            deployment.start_redis()
            env = deployment.airflow_env(stack, config)
            print("Starting Airflow: api-server, scheduler, dag-processor, triggerer, 2 Celery workers ...", flush=True)
            deployment.start_airflow(env)
            api = Api(f"http://127.0.0.1:{deployment.api_port}")
            _wait(
                "the api-server",
                lambda: api.session.get(f"{api.base}/api/v2/version", timeout=5).ok,
                180,
                deployment.procs["api-server"],
            )
            api.login()
            _wait(
                "the DAG to be parsed",
                lambda: api.call("GET", f"/dags/{DAG_ID}"),
                180,
                deployment.procs["dag-processor"],
            )
            api.call("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})
            run = api.call(
                "POST",
                f"/dags/{DAG_ID}/dagRuns",
                json={
                    "logical_date": None,
                    "conf": {"window_start": START.isoformat(), "window_end": END.isoformat()},
                },
            )
            run_id = run["dag_run_id"]
            print(f"Triggered {run_id} through the REST API; waiting ...", flush=True)
            deadline = time.monotonic() + args.timeout
            state = run["state"]
            while state not in ("success", "failed"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the run is still {state} after {args.timeout:.0f} s")
                for name, proc in deployment.procs.items():
                    if proc.poll() is not None:
                        raise SystemExit(f"{name} exited with {proc.returncode}; see {root / (name + '.log')}")
                time.sleep(2)
                state = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")["state"]
            instances = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances?limit=1000")["task_instances"]
            logs = {
                f"worker-{n}": (root / f"worker-{n}.log").read_text(errors="replace")
                for n in range(1, deployment.workers + 1)
            }
        finally:
            deployment.stop()
        figures = stack.reconcile(list(PROJECTS), START, END)
        report = stack.report(config, f"{START:%Y%m%dT%H%M%SZ}--{END:%Y%m%dT%H%M%SZ}")

    overlap, per_worker = parallel_proof(instances, logs)
    states = Counter(ti["state"] for ti in instances)
    print(f"\nRun {run_id}: {state}; task instances {dict(states)}")
    if report:
        from acc_buildpass.pipeline.report import render

        print(render(report))
    print(f"Reconciliation: {figures}")
    print(f"Parallelism: up to {overlap} mapped task instances running at once; per worker log {per_worker}")
    print(f"Wall time: {time.monotonic() - began:.0f} s")
    ok = (
        state == "success"
        and figures["missing"] == figures["duplicates"] == figures["extra"] == figures["bytes_differ"] == 0
        and figures["created"] == figures["expected"] > 0
        and overlap >= 2
        and min(per_worker.values(), default=0) > 0
    )
    print(
        "OK: exactly once on a Celery deployment, batches in parallel"
        if ok
        else "FAILED: see above and the logs in " + str(root)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
        sys.exit(main())
