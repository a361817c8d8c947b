"""Exactly once when the world misbehaves: every fault at once, an S3 restart, a killed worker.

Each test runs the real DAG (``airflow dags test``) against the emulators and SeaweedFS, then
reconciles BuildPass against ACC: each eligible photo exactly once, the same bytes, nothing extra.
The figures of each reconciliation are printed (``pytest -s`` or ``make chaos`` shows them).
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sandbox.secrets_check import collect_airflow_texts, find_leaks
from sandbox.stack import BUILDER, Stack

pytestmark = pytest.mark.slow

DAY = datetime(2026, 4, 6, tzinfo=UTC)
MEDIA = ("NORMAL", "INFRARED", "PHOTOSPHERE")
ACC_FAULTS = {
    "rates": {"error5xx": 0.10, "rate_limit": 0.05, "reset": 0.03, "truncate": 0.02},
    "retry_after": 1,
    "access_token_ttl": 3,  # shorter than the client's 60 s margin: a refresh before every call
    "signed_url_ttl": 5,
    "download_bandwidth": 40_000,  # bytes/s per download: a batch outlives its signed URLs
}
BP_FAULTS = {"rates": {"error5xx": 0.10, "lost_response": 0.05}}
RETRY = {"attempts": 10, "initial_wait": 0.2, "max_wait": 2, "max_retry_after": 5}


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def reconcile(stack: Stack, project: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Ground truth from both emulators: expected, created, duplicates, missing, extra, bytes that differ."""
    from acc_buildpass.models import parse_time

    source = {p["id"]: p for p in stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]}
    expected = {
        pid
        for pid, p in source.items()
        if not p.get("deletedAt") and p.get("mediaType") in MEDIA and start <= parse_time(p["createdAt"]) < end
    }
    created = [
        p
        for p in stack.admin("buildpass", "GET", f"/_admin/photos?builder_id={BUILDER}")["photos"]
        if p.get("externalSourceId") in source and not p.get("archivedAt")
    ]
    counts = Counter(p["externalSourceId"] for p in created)
    figures = {
        "expected": len(expected),
        "created": len(created),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "missing": sorted(expected - set(counts)),
        "extra": sorted(set(counts) - expected),
        "bytes_differ": sorted(
            p["externalSourceId"] for p in created if p["sha256"] != source[p["externalSourceId"]]["sha256"]
        ),
    }
    print(
        f"reconciliation {project[:8]}: "
        + ", ".join(f"{k} {v if isinstance(v, int) else len(v)}" for k, v in figures.items())
    )
    return figures


def assert_exactly_once(figures: dict[str, Any]) -> None:
    assert figures["duplicates"] == 0
    assert figures["missing"] == [] and figures["extra"] == [] and figures["bytes_differ"] == []
    assert figures["created"] == figures["expected"] > 0


def verify_agrees(stack: Stack, config: dict[str, Any], start: datetime, end: datetime, expected: int) -> None:
    """``acc-buildpass verify`` over the window finds what the emulators' ground truth says: every
    eligible photo once, of the right size. The listing is full for it: under a capped one verify
    says "possibly incomplete" (tests/unit/pipeline/test_verify.py), which is all it can say."""
    from tests.integration.test_cli_replay import cli

    stack.admin("buildpass", "POST", "/_admin/answers", {"listing": "full"})
    proc = cli("verify", "--start", start.isoformat(), "--end", end.isoformat(), "--json", env=stack.env(config))
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    totals = result["totals"]
    print(
        f"verify {start:%H}-{end:%H}h: " + ", ".join(f"{k} {v}" for k, v in totals.items()) + f"; cost {result['cost']}"
    )
    assert (totals["absent"], totals["doubled"], totals["wrong_size"], totals["not_linkable"]) == (0, 0, 0, 0)
    assert totals["unlinked"] == 0 and totals["confirmed"] == totals["eligible"] == expected
    # Exit 1 only when the shared BuildPass project happens to hold a round number of photos.
    assert proc.returncode == (1 if totals["listing_incomplete"] else 0), proc.stderr


def assert_no_secret_leaked(stack: Stack, config: dict[str, Any], output: str) -> int:
    """Every secret the emulators issued or were given, and the S3 keys, in no log, XCom, conf or object we wrote."""
    secrets = stack.admin("acc", "GET", "/_admin/secrets") + stack.admin("buildpass", "GET", "/_admin/secrets")
    secrets += [stack.s3_key, stack.s3_secret, stack.refresh_token]
    texts = {"airflow dags test output": output, **collect_airflow_texts(stack.root / "airflow")}
    s3 = stack.s3()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=stack.bucket, Prefix=config["staging_prefix"] + "/"
    ):
        for item in page.get("Contents", []):
            if item["Key"].endswith((".json", ".md")):
                body = s3.get_object(Bucket=stack.bucket, Key=item["Key"])["Body"].read()
                texts[f"s3:{item['Key']}"] = body.decode("utf-8", "replace")
    assert find_leaks(secrets, texts) == []
    return len(secrets)


def wait_for(what: str, condition: Callable[[], bool], proc: Any, timeout: float = 300) -> None:
    """Poll a condition on the emulators while the DAG runs (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


def created_of(stack: Stack, project: str) -> int:
    """How many BuildPass photos come from the ACC project's photos (no print: this is polled)."""
    source = {p["id"] for p in stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]}
    made = stack.admin("buildpass", "GET", f"/_admin/photos?builder_id={BUILDER}")["photos"]
    return sum(1 for p in made if p.get("externalSourceId") in source)


def requests_of(stack: Stack, server: str, route: str) -> int:
    return int(stack.admin(server, "GET", "/_admin/stats")["requests"].get(route, 0))


@pytest.fixture
def faults(stack: Stack) -> Any:
    """Turn faults on for one test; whatever happens, off again after it."""

    def on(seed: int) -> None:
        stack.admin("acc", "POST", "/_admin/faults", {**ACC_FAULTS, "seed": seed})
        stack.admin("buildpass", "POST", "/_admin/faults", {**BP_FAULTS, "seed": seed + 1})
        # Access tokens issued so far (an hour at most) are refused from now on. The session's
        # clock only ever moves forward, so this holds whatever ran before.
        stack.admin("acc", "POST", "/_admin/clock", {"advance_seconds": 3700})

    yield on
    stack.admin("acc", "POST", "/_admin/faults", {})
    stack.admin("buildpass", "POST", "/_admin/faults", {})


@pytest.mark.parametrize("mode", ["bulk", "single"])
def test_every_fault_at_once_and_an_s3_restart(stack: Stack, faults: Any, tmp_path: Path, mode: str) -> None:
    project = str(uuid.uuid4())
    start, end = DAY, DAY + timedelta(hours=6)
    count = 140 if mode == "bulk" else 90
    stack.seed_acc(
        project,
        count=count,
        start=iso(start),
        end=iso(end),
        seed=41,
        deleted=4,
        videos=3,
        min_size=20_000,
        max_size=60_000,
    )
    config = stack.config([project], prefix=f"chaos-{project[:8]}", publish_mode=mode, retry=RETRY)
    if mode == "single":
        # POST /photos does not deduplicate: after a lost answer, only a complete listing can rule
        # out a second photo. Under a capped listing single mode fails such photos instead (see
        # tests/unit/pipeline/test_publish.py); bulk mode, the default, needs no listing to be whole.
        stack.admin("buildpass", "POST", "/_admin/answers", {"listing": "full"})
    tokens_before = requests_of(stack, "acc", "token")
    faults(seed=7 if mode == "bulk" else 8)

    log = tmp_path / "run.log"
    proc = stack.start_dag(start.isoformat(), end.isoformat(), config, log)
    try:
        # Restart the S3 server while photos are being staged.
        downloads = requests_of(stack, "acc", "oss")
        wait_for("30 downloads", lambda: requests_of(stack, "acc", "oss") >= downloads + 30, proc)
        stack.restart_s3()
        rc = proc.wait(900)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text(errors="replace")
    assert rc == 0, output[-4000:]
    assert_exactly_once(reconcile(stack, project, start, end))
    refreshes = requests_of(stack, "acc", "token") - tokens_before
    print(f"{mode}: ACC token refreshes during the run: {refreshes}")
    assert refreshes > 3  # tokens expired all along, and the rotating chain never broke
    checked = assert_no_secret_leaked(stack, config, output)
    print(f"{mode}: {checked} secrets looked for in the output, task logs, XComs, rendered fields and reports")

    # The chain still signs in after all that, and a re-run creates nothing.
    stack.admin("acc", "POST", "/_admin/faults", {})
    stack.admin("buildpass", "POST", "/_admin/faults", {})
    rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
    assert rc == 0, output[-4000:]
    figures = reconcile(stack, project, start, end)
    assert_exactly_once(figures)
    verify_agrees(stack, config, start, end, figures["expected"])


def test_worker_killed_in_the_middle_of_a_publish_batch(stack: Stack, tmp_path: Path) -> None:
    project = str(uuid.uuid4())
    start, end = DAY, DAY + timedelta(hours=4)
    stack.seed_acc(project, count=160, start=iso(start), end=iso(end), seed=42)
    config = stack.config([project], prefix=f"crash-{project[:8]}", retry=RETRY)
    stack.admin("buildpass", "POST", "/_admin/faults", {"latency_ms": 300})  # a publish takes a while
    proc = stack.start_dag(start.isoformat(), end.isoformat(), config, tmp_path / "killed.log")
    try:
        # The first photos in BuildPass: a publish is under way, with most of the window still to go
        # (requests of at most 10 files and 20 photos under the worst answers, each 300 ms).
        wait_for("a publish in progress", lambda: created_of(stack, project) > 0, proc)
        os.killpg(proc.pid, signal.SIGKILL)  # the worker dies with no chance to clean up
        proc.wait(30)
    finally:
        stack.admin("buildpass", "POST", "/_admin/faults", {})
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    partial = reconcile(stack, project, start, end)
    assert partial["duplicates"] == 0 and 0 < partial["created"] < partial["expected"], partial

    s3 = stack.s3()
    listed = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"crash-{project[:8]}/objects/{project}/")
    staged = {item["Key"].rsplit("/", 1)[-1] for item in listed.get("Contents", [])}
    downloads = requests_of(stack, "acc", "oss")
    rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
    assert rc == 0, output[-4000:]
    figures = reconcile(stack, project, start, end)
    assert_exactly_once(figures)
    # Photos staged intact before the crash are not downloaded again.
    assert requests_of(stack, "acc", "oss") - downloads == figures["expected"] - len(staged)


def test_overlapping_windows_and_a_backfill_over_copied_days(stack: Stack) -> None:
    project = str(uuid.uuid4())
    start = DAY
    stack.seed_acc(project, count=90, start=iso(start), end=iso(start + timedelta(hours=9)), seed=43)
    config = stack.config([project], prefix=f"overlap-{project[:8]}")
    # Two windows that overlap by three hours, then one window over everything.
    for a, b in ((0, 6), (3, 9)):
        rc, output = stack.run_dag(
            (start + timedelta(hours=a)).isoformat(), (start + timedelta(hours=b)).isoformat(), config
        )
        assert rc == 0, output[-4000:]
    # Each window verifies on its own: the other window's photos are not judged.
    for a, b in ((0, 6), (3, 9)):
        window = (start + timedelta(hours=a), start + timedelta(hours=b))
        verify_agrees(stack, config, *window, reconcile(stack, project, *window)["expected"])
    downloads = requests_of(stack, "acc", "oss")
    uploads = requests_of(stack, "buildpass", "bulk-upload")
    rc, output = stack.run_dag(start.isoformat(), (start + timedelta(hours=9)).isoformat(), config)
    assert rc == 0, output[-4000:]
    assert_exactly_once(reconcile(stack, project, start, start + timedelta(hours=9)))
    assert requests_of(stack, "acc", "oss") == downloads, "a backfill downloaded photos again"
    assert requests_of(stack, "buildpass", "bulk-upload") == uploads, "a backfill uploaded photos again"
