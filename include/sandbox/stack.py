"""The local stack: a real S3 server (SeaweedFS) and both API emulators, plus Airflow's environment.

One ``Stack`` serves a whole test session or one ``make demo``: it starts ``weed server`` with S3
authentication on loopback, the emulators in their own process (``python -m sandbox``), creates
the staging bucket, and gives the environment that points Airflow at all of them
(``AIRFLOW_CONN_*``, the ``acc_buildpass_config`` Variable, a SQLite metadata DB).

    with Stack.start(Path("/tmp/stack")) as stack:
        stack.seed_acc(project, count=100, start="2026-03-01T00:00:00", end="2026-03-02T00:00:00")
        rc, output = stack.airflow("dags", "test", "acc_to_buildpass_photos", ...)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "acc_to_buildpass_photos"
BUILDER = "buil_demo"
BP_PROJECT = "proj_demo"
ACC_CLIENT = ("acc-demo-client", "acc-demo-secret")
BP_CLIENT = ("bp-demo-client", "bp-demo-secret")
REGION = "us-east-1"
MEDIA = ("NORMAL", "INFRARED", "PHOTOSPHERE")  # the media types copied by default


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int, rng: Any = None) -> list[int]:
    """Ports p free together with p + 10000 (SeaweedFS puts each gRPC listener there)."""
    import random

    rng = rng or random.Random()
    chosen: list[int] = []
    for _ in range(2000):
        port = rng.randrange(18000, 28000)
        if any(abs(port - c) < 3 for c in chosen):
            continue
        if _free(port) and _free(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free ports on 127.0.0.1")


def _wait(what: str, check: Any, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} while starting")
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s ({last!r})")


def _stop(proc: subprocess.Popen[bytes] | None, grace: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def executor_settings(api_port: int, executor: str, parallelism: int, jwt_secret: str) -> dict[str, str]:
    """Airflow settings for task processes that report to an api-server on this machine.

    ``min_heartbeat_interval`` 1 (not 5), as the README recommends: Airflow's task supervisor can
    miss the moment a finished task process exits and notice it only at its next heartbeat check,
    holding the task's slot that long.
    """
    return {
        "AIRFLOW__CORE__EXECUTOR": executor,
        "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
    }


@dataclass
class Stack:
    root: Path
    bucket: str = "acc-buildpass-staging"
    s3_url: str = ""
    acc_url: str = ""
    buildpass_url: str = ""
    s3_key: str = field(default_factory=lambda: "AK" + secrets.token_hex(8).upper())
    s3_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    fernet_key: str = ""
    refresh_token: str = ""
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _runs: int = 0
    last_logical_date: str = ""

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def start(cls, root: Path, *, seed: int = 0, bucket: str = "acc-buildpass-staging") -> Stack:
        """Start SeaweedFS and the emulators (both in the background at once), migrate Airflow's DB."""
        root = Path(root)
        if root.exists():
            shutil.rmtree(root)
        (root / "s3").mkdir(parents=True)
        (root / "airflow").mkdir()
        stack = cls(root=root, bucket=bucket)
        try:
            stack._start_s3()
            stack._start_emulators(seed)
            stack.fernet_key = Fernet.generate_key().decode()
            migrate = subprocess.run(
                [stack.bin("airflow"), "db", "migrate"], env=stack.env(), capture_output=True, text=True, check=False
            )
            if migrate.returncode:
                raise RuntimeError(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}")
            _wait("SeaweedFS S3", stack._create_bucket, 90, stack._procs["s3"])
            stack.refresh_token = stack.new_refresh_token()
        except BaseException:
            stack.stop()
            raise
        return stack

    def _start_s3(self) -> None:
        master, volume, filer, s3 = free_ports(4)
        config = self.root / "s3" / "identities.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "acc-buildpass",
                            "credentials": [{"accessKey": self.s3_key, "secretKey": self.s3_secret}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        config.chmod(0o600)
        data = self.root / "s3" / "data"
        data.mkdir()
        command = [
            self.bin("weed"),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-volume.port={volume}",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=256",
            "-volume.max=64",
        ]
        log = open(self.root / "s3" / "weed.log", "wb")  # noqa: SIM115 - lives as long as the server
        self._procs["s3"] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.s3_url = f"http://127.0.0.1:{s3}"

    def _start_emulators(self, seed: int) -> None:
        ready = self.root / "sandbox.json"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
        log = open(self.root / "sandbox.log", "wb")  # noqa: SIM115
        self._procs["sandbox"] = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--ready-file", str(ready), "--seed", str(seed)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        urls = _wait(
            "API emulators", lambda: ready.exists() and json.loads(ready.read_text()), 30, self._procs["sandbox"]
        )
        self.acc_url, self.buildpass_url = urls["acc_url"], urls["buildpass_url"]

    def _create_bucket(self) -> bool:
        s3 = self.s3()
        try:
            s3.head_bucket(Bucket=self.bucket)
        except Exception:
            s3.create_bucket(Bucket=self.bucket)
            s3.head_bucket(Bucket=self.bucket)
        # SeaweedFS answers the bucket calls before its volumes take writes: prove a write.
        s3.put_object(Bucket=self.bucket, Key="_ready", Body=b"ok")
        return True

    def stop(self) -> None:
        _stop(self._procs.pop("sandbox", None), 5)
        _stop(self._procs.pop("s3", None), 3)  # its data is throwaway: no 15 s graceful stop

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- clients -----------------------------------------------------------------------------

    @staticmethod
    def bin(name: str) -> str:
        here = Path(sys.executable).parent / name
        return str(here) if here.exists() else (shutil.which(name) or name)

    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id=self.s3_key,
            aws_secret_access_key=self.s3_secret,
            region_name=REGION,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=2, read_timeout=10),
        )

    def admin(self, server: str, method: str, path: str, body: Any = None) -> Any:
        base = {"acc": self.acc_url, "buildpass": self.buildpass_url}[server]
        response = requests.request(method, base + path, json=body, timeout=60)
        if response.status_code >= 300:
            raise RuntimeError(f"{server} admin {method} {path}: {response.status_code} {response.text[:500]}")
        return response.json() if response.content else None

    def seed_acc(self, project_id: str, **kwargs: Any) -> Any:
        return self.admin("acc", "POST", "/_admin/seed", {"project_id": project_id, **kwargs})

    def new_refresh_token(self) -> str:
        token: str = self.admin("acc", "POST", "/_admin/refresh-token", {"client_id": ACC_CLIENT[0]})["refresh_token"]
        return token

    # -- Airflow -----------------------------------------------------------------------------

    def connections(self) -> dict[str, str]:
        return {
            "AIRFLOW_CONN_ACC_DEFAULT": json.dumps(
                {
                    "conn_type": "acc",
                    "host": self.acc_url,
                    "login": ACC_CLIENT[0],
                    "password": ACC_CLIENT[1],
                    "extra": {"refresh_token": self.refresh_token},
                }
            ),
            "AIRFLOW_CONN_BUILDPASS_DEFAULT": json.dumps(
                {"conn_type": "buildpass", "host": self.buildpass_url, "login": BP_CLIENT[0], "password": BP_CLIENT[1]}
            ),
            "AIRFLOW_CONN_ACC_BUILDPASS_STAGING": json.dumps(
                {
                    "conn_type": "aws",
                    "login": self.s3_key,
                    "password": self.s3_secret,
                    "extra": {"endpoint_url": self.s3_url, "region_name": REGION},
                }
            ),
        }

    def env(self, config: dict[str, Any] | None = None) -> dict[str, str]:
        home = self.root / "airflow"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_", "AIRFLOW__", "AWS_"))
        }
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                **self.connections(),
            }
        )
        if config is not None:
            env["AIRFLOW_VAR_ACC_BUILDPASS_CONFIG"] = json.dumps(config)
        return env

    def config(self, project_ids: list[str], prefix: str = "acc-photos", **extra: Any) -> dict[str, Any]:
        """The Variable for these projects; batches of 50 (not 500) so a few hundred photos make several."""
        extra.setdefault("batch_size", 50)
        return {
            "staging_bucket": self.bucket,
            "staging_prefix": prefix,
            "projects": [
                {
                    "acc_project_id": p,
                    "builder_id": BUILDER,
                    "buildpass_project_id": BP_PROJECT,
                    "buildpass_folder_id": None,
                }
                for p in project_ids
            ],
            **extra,
        }

    @contextlib.contextmanager
    def local_executor(self, parallelism: int) -> Iterator[dict[str, str]]:
        """Task processes in parallel, as under a scheduler: an api-server for LocalExecutor's tasks.

        Yields the settings to add to :meth:`env` so that ``airflow dags test --use-executor`` hands
        its tasks to a LocalExecutor of ``parallelism`` processes (plain ``dags test`` runs them one
        after another in its own process). The api-server is stopped on exit.
        """
        (port,) = free_ports(1)
        extra = executor_settings(port, "LocalExecutor", parallelism, "sandbox-" + self.s3_secret[:16])
        home = Path(self.env()["AIRFLOW_HOME"])
        with open(home / "api-server.log", "wb") as out:
            proc = subprocess.Popen(
                [self.bin("airflow"), "api-server", "--port", str(port), "--host", "127.0.0.1"],
                env={**self.env(), **extra},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            session = requests.Session()
            session.trust_env = False
            _wait(
                "the api-server",
                lambda: session.get(f"http://127.0.0.1:{port}/api/v2/version", timeout=5).ok,
                180,
                proc,
            )
            # Its task API loads on first use (5 s here): a running api-server has long paid that.
            session.get(f"http://127.0.0.1:{port}/execution/health", timeout=120).raise_for_status()
            yield extra
        finally:
            _stop(proc, 20)

    def _dag_command(self, window_start: str, window_end: str) -> list[str]:
        self._runs += 1
        # Unique per run, and after the DAG's start_date (a run before it runs no task at all).
        logical = f"2026-06-01T00:{self._runs // 60:02d}:{self._runs % 60:02d}+00:00"
        self.last_logical_date = logical
        conf = json.dumps({"window_start": window_start, "window_end": window_end})
        return [self.bin("airflow"), "dags", "test", DAG_ID, logical, "-c", conf]

    def run_dag(
        self, window_start: str, window_end: str, config: dict[str, Any], timeout: float = 900
    ) -> tuple[int, str]:
        """``airflow dags test`` for one window; returns (exit code, stdout + stderr)."""
        proc = subprocess.run(
            self._dag_command(window_start, window_end),
            env=self.env(config),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return proc.returncode, proc.stdout + "\n" + proc.stderr

    def start_dag(
        self, window_start: str, window_end: str, config: dict[str, Any], log: Path
    ) -> subprocess.Popen[bytes]:
        """The same in the background, in its own process group (for crash tests); output to ``log``."""
        with open(log, "wb") as out:
            return subprocess.Popen(
                self._dag_command(window_start, window_end),
                env=self.env(config),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def restart_s3(self) -> None:
        """Stop the S3 server (SIGTERM, as a restart does) and start it again on the same ports and data."""
        proc = self._procs.pop("s3")
        command = list(proc.args)  # type: ignore[arg-type]
        _stop(proc, 30)
        log = open(self.root / "s3" / "weed.log", "ab")  # noqa: SIM115 - lives as long as the server
        self._procs["s3"] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait("SeaweedFS S3 after a restart", self._create_bucket, 90, self._procs["s3"])

    def reconcile(self, projects: list[str], start: datetime, end: datetime) -> dict[str, int]:
        """BuildPass against ACC: every eligible photo once, with the same sha256, nothing extra.

        Eligible: not deleted, a media type copied by default, created in [start, end).
        """
        from acc_buildpass.models import parse_time

        expected: dict[str, str] = {}
        for project in projects:
            for p in self.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]:
                if not p.get("deletedAt") and p.get("mediaType") in MEDIA and start <= parse_time(p["createdAt"]) < end:
                    expected[p["id"]] = p["sha256"]
        created = self.admin("buildpass", "GET", f"/_admin/photos?builder_id={BUILDER}")["photos"]
        counts = Counter(p["externalSourceId"] for p in created)
        return {
            "expected": len(expected),
            "created": len(created),
            "duplicates": sum(n - 1 for n in counts.values() if n > 1),
            "missing": len(set(expected) - set(counts)),
            "extra": len(set(counts) - set(expected)),
            "bytes_differ": sum(1 for p in created if expected.get(p["externalSourceId"], p["sha256"]) != p["sha256"]),
        }

    def report(self, config: dict[str, Any], window_id: str) -> Any | None:
        key = f"{config.get('staging_prefix', 'acc-photos')}/windows/{window_id}/report.json"
        try:
            body = self.s3().get_object(Bucket=config["staging_bucket"], Key=key)["Body"].read()
        except Exception:
            return None
        return json.loads(body)


@contextlib.contextmanager
def running(root: Path, **kwargs: Any) -> Iterator[Stack]:
    stack = Stack.start(root, **kwargs)
    try:
        yield stack
    finally:
        stack.stop()
