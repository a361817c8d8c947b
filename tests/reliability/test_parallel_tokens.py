"""Parallel task processes sharing ONE rotating ACC refresh token (real OS processes, real emulator).

ACC refresh tokens are single use: if two processes ever refreshed with the same token, the
second would get ``invalid_grant`` and the chain would be broken for good. Here ten processes,
each building the client the way a task does (``AccHook("acc_default").get_conn()``), share
one connection (one fresh refresh token, one token store directory) and start together at a
barrier, while the emulator's access tokens live one second, so that nearly every call needs a
refresh under contention.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from acc_buildpass.clients.tokens import fingerprint
from cryptography.fernet import Fernet
from sandbox.stack import ACC_CLIENT, Stack

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("token_worker.py")
PROCESSES = 10
ROUNDS = 5
PHOTOS = 60  # two pages of photos:filter per listing
WINDOW = ("2024-03-01T00:00:00", "2024-03-02T00:00:00")
TIMEOUT = 300


@dataclass
class Worker:
    rc: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        lines = [line for line in self.stdout.splitlines() if line.startswith("RESULT ")]
        assert lines, f"no RESULT line (rc {self.rc}):\n{self.stdout[-2000:]}\n{self.stderr[-2000:]}"
        return json.loads(lines[-1][len("RESULT ") :])  # type: ignore[no-any-return]


@dataclass
class Run:
    env: dict[str, str]
    project: str
    original_token: str
    store_dir: Path
    barrier: Path
    workers: list[Worker]
    token_calls: int  # growth of the emulator's token route count over the parallel run
    filter_calls: int  # growth of its photos:filter route count


def _stats(stack: Stack) -> dict[str, int]:
    return stack.admin("acc", "GET", "/_admin/stats")["requests"]  # type: ignore[no-any-return]


def _command(run_project: str, barrier: Path, ready_fd: int = -1, rounds: int = ROUNDS) -> list[str]:
    return [
        sys.executable,
        str(WORKER),
        "--project",
        run_project,
        "--start",
        WINDOW[0],
        "--end",
        WINDOW[1],
        "--rounds",
        str(rounds),
        "--barrier",
        str(barrier),
        "--ready-fd",
        str(ready_fd),
    ]


def _collect(proc: subprocess.Popen[bytes], out: Path, err: Path) -> Worker:
    try:
        rc = proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait(10)
    return Worker(rc, out.read_text(errors="replace"), err.read_text(errors="replace"))


def run_one(run: Run, tmp: Path, name: str, rounds: int = 1) -> Worker:
    """One more task-like process after the parallel run (the barrier is free by now)."""
    out, err = tmp / f"{name}.out", tmp / f"{name}.err"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(_command(run.project, run.barrier, rounds=rounds), env=run.env, stdout=o, stderr=e)
    return _collect(proc, out, err)


@pytest.fixture(scope="module")
def run(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("parallel-tokens")
    project = f"tokens-{uuid.uuid4()}"
    stack.seed_acc(project, count=PHOTOS, start=WINDOW[0], end=WINDOW[1], seed=11)
    original = stack.new_refresh_token()  # a chain of our own: the stack's token stays untouched
    store_dir = tmp / "token-store"
    env = stack.env()
    assert env.get("AIRFLOW__CORE__FERNET_KEY"), "stack.env() is expected to configure a Fernet key"
    env["AIRFLOW_CONN_ACC_DEFAULT"] = json.dumps(
        {
            "conn_type": "acc",
            "host": stack.acc_url,
            "login": ACC_CLIENT[0],
            "password": ACC_CLIENT[1],
            "extra": {"refresh_token": original, "token_store": str(store_dir)},
        }
    )
    barrier = tmp / "barrier"
    barrier.touch()
    gate = os.open(barrier, os.O_RDWR)

    fcntl.flock(gate, fcntl.LOCK_EX)  # held until every worker is ready
    procs: list[tuple[subprocess.Popen[bytes], Path, Path]] = []
    stack.admin("acc", "POST", "/_admin/faults", {"access_token_ttl": 1})
    try:
        before = _stats(stack)
        read_end, write_end = os.pipe()
        try:
            for i in range(PROCESSES):
                out, err = tmp / f"worker-{i}.out", tmp / f"worker-{i}.err"
                with out.open("wb") as o, err.open("wb") as e:
                    procs.append(
                        (
                            subprocess.Popen(
                                _command(project, barrier, write_end),
                                env=env,
                                stdout=o,
                                stderr=e,
                                pass_fds=(write_end,),
                            ),
                            out,
                            err,
                        )
                    )
        finally:
            os.close(write_end)
        # Every worker writes one byte once its client is built, then closes its end of the
        # pipe: EOF comes when all of them are ready (or dead, which the count shows).
        ready = b""
        with os.fdopen(read_end, "rb") as pipe:
            while chunk := pipe.read(1):
                ready += chunk
        assert ready == b"R" * PROCESSES, f"only {len(ready)} of {PROCESSES} workers got ready"
        fcntl.flock(gate, fcntl.LOCK_UN)  # go: every worker leaves the barrier at once
        workers = [_collect(p, o, e) for p, o, e in procs]
        after = _stats(stack)
    finally:
        os.close(gate)
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        stack.admin("acc", "POST", "/_admin/faults", {})
    yield Run(
        env=env,
        project=project,
        original_token=original,
        store_dir=store_dir,
        barrier=barrier,
        workers=workers,
        token_calls=after.get("token", 0) - before.get("token", 0),
        filter_calls=after.get("photos:filter", 0) - before.get("photos:filter", 0),
    )


def _store_file(run: Run) -> Path:
    files = sorted(run.store_dir.glob("acc-token-*.json"))
    assert len(files) == 1, files
    return files[0]


def _stored_state(run: Run) -> dict[str, Any]:
    fernet = Fernet(run.env["AIRFLOW__CORE__FERNET_KEY"].encode())
    return json.loads(fernet.decrypt(_store_file(run).read_bytes()))  # type: ignore[no-any-return]


def test_parallel_processes_never_spend_the_same_refresh_token(run: Run) -> None:
    for i, worker in enumerate(run.workers):
        output = worker.stdout + worker.stderr
        assert worker.rc == 0, f"worker {i} exited {worker.rc}:\n{output[-3000:]}"
        assert "invalid_grant" not in output and "RefreshTokenRejected" not in output, output[-3000:]
    results = [w.result for w in run.workers]
    # Each process did its work completely: every listing saw every photo, every fetch got signed URLs.
    for result in results:
        assert result["listed"] == [PHOTOS] * ROUNDS
        assert result["fetched"] == [10] * ROUNDS
        assert result["calls"] == ROUNDS * 3  # two pages of listing, one photos_by_id call
    refreshes = sum(r["refreshes"] for r in results)
    print(f"{PROCESSES} processes, refreshes {[r['refreshes'] for r in results]}, token calls {run.token_calls}")
    # With access tokens of one second, nearly every call needs a new one: real contention.
    assert refreshes >= PROCESSES
    assert sum(1 for r in results if r["refreshes"]) >= 2, results
    # One token call per refresh a process counted: no refresh was ever refused, replayed or
    # done by anyone else (a second use of a rotated token would be a token call without one).
    assert run.token_calls == refreshes, (run.token_calls, [r["refreshes"] for r in results])
    assert run.filter_calls >= sum(r["calls"] for r in results)


def test_a_new_process_signs_in_with_the_stored_chain(run: Run, tmp_path: Path, stack: Stack) -> None:
    # The connection still names the original (now dead) token; the store's chain carries on.
    before = _stats(stack).get("token", 0)
    first = run_one(run, tmp_path, "after-1")
    assert first.rc == 0, (first.stdout + first.stderr)[-3000:]
    assert first.result["listed"] == [PHOTOS]
    # The stored access token (one second, from the run) has expired: exactly one refresh.
    assert first.result["refreshes"] == 1
    # The next process reuses the access token the first one stored (normal lifetime now).
    second = run_one(run, tmp_path, "after-2")
    assert second.rc == 0, (second.stdout + second.stderr)[-3000:]
    assert second.result["refreshes"] == 0
    assert _stats(stack).get("token", 0) - before == 1


def test_the_original_refresh_token_is_dead_and_the_store_kept_the_chain(run: Run, stack: Stack) -> None:
    assert all(w.rc == 0 for w in run.workers)
    response = requests.post(
        stack.acc_url + "/authentication/v2/token",
        auth=ACC_CLIENT,
        data={"grant_type": "refresh_token", "refresh_token": run.original_token, "scope": "data:read"},
        timeout=30,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    state = _stored_state(run)
    assert state["refresh_token"] != run.original_token
    assert state["seed"] == fingerprint(run.original_token)


def test_the_token_store_is_private_and_encrypted(run: Run) -> None:
    path = _store_file(run)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(run.store_dir.stat().st_mode) & 0o077 == 0
    for lock in run.store_dir.glob("*.lock"):
        assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    raw = path.read_bytes()
    state = _stored_state(run)  # decrypts with the Airflow Fernet key, or fails
    for secret in (state["refresh_token"], state["access_token"], run.original_token):
        assert secret and secret.encode() not in raw
    # No temporary file with a token in clear text was left behind either.
    assert sorted(p.name for p in run.store_dir.iterdir() if p.name.startswith(".")) == []
