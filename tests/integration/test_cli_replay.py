"""``acc-buildpass replay``: a window's permanently failed photos retried, exactly those, exactly once.

Over the real stack: the DAG runs a window in which one photo's download fails on every attempt;
once ACC serves it again, ``replay`` copies that photo alone (one download, one BuildPass photo)
and a second ``replay`` finds it already there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from acc_buildpass.models import Window
from sandbox.stack import Stack

CLI = Path(sys.executable).parent / "acc-buildpass"
COPIED = ("NORMAL", "INFRARED", "PHOTOSPHERE")
DAY = datetime(2026, 4, 9, tzinfo=UTC)
QUICK_RETRY = {"attempts": 2, "initial_wait": 0.05, "max_wait": 0.1}


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert CLI.exists(), f"{CLI} is missing: run .venv/bin/pip install -e . --no-deps"
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def acc_requests(stack: Stack) -> Counter[str]:
    return Counter({k: int(v) for k, v in stack.admin("acc", "GET", "/_admin/stats")["requests"].items()})


def in_buildpass(stack: Stack, photo_ids: set[str]) -> Counter[str]:
    """How many BuildPass photos carry each of these ACC ids as externalSourceId."""
    photos = stack.admin("buildpass", "GET", "/_admin/photos?builder_id=buil_demo")["photos"]
    return Counter(p["externalSourceId"] for p in photos if p["externalSourceId"] in photo_ids)


def test_replay_help(tmp_path: Path) -> None:
    proc = cli("replay", "--help", env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: acc-buildpass replay")
    assert "--start" in proc.stdout and "--json" in proc.stdout


@pytest.mark.slow
def test_replay_copies_exactly_the_failed_photo_once_and_then_finds_it_present(stack: Stack) -> None:
    project = str(uuid.uuid4())
    start, end = DAY, DAY + timedelta(days=1)
    stack.seed_acc(project, count=4, start=iso(start), end=iso(end), seed=31)
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]
    eligible = {p["id"] for p in photos if not p.get("deletedAt") and p["mediaType"] in COPIED}
    assert len(eligible) >= 2
    broken = sorted(eligible)[0]
    config = stack.config([project], prefix=f"replay-{project[:8]}")
    config["retry"] = QUICK_RETRY
    env = stack.env(config)
    window = ["--start", start.isoformat(), "--end", end.isoformat()]

    # Before the DAG ran the window there is no report: a clear configuration error, nothing moved.
    none_yet = cli("replay", *window, env=env)
    assert none_yet.returncode == 2, none_yet.stdout + none_yet.stderr
    assert "no report for window" in none_yet.stderr and "run the DAG for the window first" in none_yet.stderr

    stack.admin("acc", "POST", f"/_admin/photos/{broken}/behaviour", {"download": "error500"})
    rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
    assert rc != 0, output[-3000:]
    report = stack.report(config, Window(start, end).id)
    assert report is not None, output[-3000:]
    [row] = report["projects"]
    assert [f["photo_id"] for f in row["failed"]] == [broken], row["failed"]
    assert row["created"] == len(eligible) - 1
    assert in_buildpass(stack, eligible) == Counter(eligible - {broken})

    stack.admin("acc", "POST", f"/_admin/photos/{broken}/behaviour", {"download": "ok"})
    before = acc_requests(stack)
    proc = cli("replay", *window, "--json", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert [(p["photo_id"], p["status"]) for p in result["photos"]] == [(broken, "created")]
    assert result["totals"]["created"] == 1 and result["totals"]["failed"] == 0
    assert result["photos"][0]["reported_reason"].startswith("download failed after retries")
    after = acc_requests(stack)
    assert after["oss"] - before["oss"] == 1  # the failed photo, downloaded once; no other
    assert after["asset"] == before["asset"]
    # Every eligible photo of the window in BuildPass exactly once, the replayed one included.
    assert in_buildpass(stack, eligible) == Counter(eligible)
    key = f"{config['staging_prefix']}/windows/{Window(start, end).id}/report-replay.json"
    written = json.loads(stack.s3().get_object(Bucket=stack.bucket, Key=key)["Body"].read())
    assert written["photos"] == result["photos"]

    # Again: nothing to create, nothing downloaded, exit 0; the table says it is already present.
    again = cli("replay", *window, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    [line] = [x for x in again.stdout.splitlines() if broken in x]
    assert line.split()[:3] == [project, broken, "present"]
    assert "1 present" in again.stdout and "0 failed" in again.stdout
    assert acc_requests(stack)["oss"] == after["oss"]
    assert in_buildpass(stack, eligible) == Counter(eligible)
    # The window's own report is left as the DAG wrote it.
    assert stack.report(config, Window(start, end).id) == report
