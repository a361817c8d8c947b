"""``acc-buildpass backfill``: months of history in one run of the real command over the real stack,
then the DAG's hourly runs over the same hours create nothing twice (one ledger for both)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from acc_buildpass.models import Window
from sandbox.stack import Stack

from tests.integration.test_cli_replay import COPIED, cli, in_buildpass, iso

DAY = datetime(2026, 4, 14, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.mark.slow
def test_a_long_range_then_hourly_runs_over_the_same_hours_create_nothing_twice(stack: Stack) -> None:
    project = str(uuid.uuid4())
    start, end = DAY, DAY + timedelta(days=3)
    stack.seed_acc(project, count=70, videos=3, deleted=2, start=iso(start), end=iso(end), seed=61)
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]
    eligible = {p["id"] for p in photos if not p.get("deletedAt") and p["mediaType"] in COPIED}
    config = stack.config([project], prefix=f"backfill-{project[:8]}", batch_size=25)  # several batches
    env = stack.env(config)

    run = cli("backfill", "--start", start.isoformat(), "--end", end.isoformat(), "--json", env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["totals"]["created"] == len(eligible) and report["totals"]["failed"] == 0
    assert report["batches"] >= 3
    assert "backfill: report written to s3://" in run.stderr
    assert f"[{len(eligible)}/{len(eligible)} photos]" in run.stderr  # progress after each batch, on stderr
    key = f"{config['staging_prefix']}/windows/{Window(start, end).id}/report.json"
    assert json.loads(stack.s3().get_object(Bucket=stack.bucket, Key=key)["Body"].read())["totals"] == report["totals"]
    assert set(in_buildpass(stack, eligible).values()) == {1}

    busy = sorted(_moment(p["createdAt"]) for p in photos if p["id"] in eligible)
    hour = busy[len(busy) // 2].replace(minute=0, second=0, microsecond=0)
    hourly = [p["id"] for p in photos if p["id"] in eligible and hour <= _moment(p["createdAt"]) < hour + HOUR]
    rc, output = stack.run_dag(hour.isoformat(), (hour + HOUR).isoformat(), config)
    assert rc == 0, output[-3000:]
    again = stack.report(config, Window(hour, hour + HOUR).id)
    assert again["totals"]["created"] == 0 and again["totals"]["present"] == len(hourly) > 0
    assert set(in_buildpass(stack, eligible).values()) == {1}  # nothing created twice

    rerun = cli("backfill", "--start", start.isoformat(), "--end", end.isoformat(), "--json", env=env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    totals = json.loads(rerun.stdout)["totals"]
    assert (totals["created"], totals["present"], totals["downloaded"]) == (0, len(eligible), 0)


def _moment(created_at: str) -> datetime:
    moment = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
