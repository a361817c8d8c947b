"""The DAG ``acc_buildpass_operations`` (check, plan, replay from a trigger form), run by
``airflow dags test`` against the emulators and SeaweedFS, with the confs its form produces.

Each test uses its own ACC project and staging prefix; the operations DAG's runs get logical
dates of their own, so they never collide with the copy DAG's runs of the same session.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from acc_buildpass.models import Window
from acc_buildpass.settings import OPERATIONS_DAG_ID
from acc_buildpass.ui.report_view import locate_operation
from sandbox.stack import Stack

pytestmark = pytest.mark.slow

DAY = datetime(2026, 5, 11, tzinfo=UTC)
COPIED = ("NORMAL", "INFRARED", "PHOTOSPHERE")
QUICK_RETRY = {"attempts": 2, "initial_wait": 0.05, "max_wait": 0.1, "max_retry_after": 1}
_runs = itertools.count(1)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def operate(stack: Stack, config: dict[str, Any], conf: dict[str, Any]) -> tuple[int, str, str]:
    """``airflow dags test acc_buildpass_operations`` with this conf: (exit code, output, run id)."""
    n = next(_runs)
    logical = f"2026-07-01T00:{n // 60:02d}:{n % 60:02d}+00:00"
    proc = subprocess.run(
        [stack.bin("airflow"), "dags", "test", OPERATIONS_DAG_ID, logical, "-c", json.dumps(conf)],
        env=stack.env(config),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return proc.returncode, proc.stdout + "\n" + proc.stderr, logical


def task_instance(stack: Stack, logical: str) -> dict[str, Any]:
    """The operate task of the run at ``logical``: its state, tries and returned XCom (None when it failed)."""
    database = stack.root / "airflow" / "airflow.db"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        runs = db.execute("SELECT run_id, logical_date FROM dag_run WHERE dag_id = ?", (OPERATIONS_DAG_ID,)).fetchall()
        wanted = datetime.fromisoformat(logical)
        [run_id] = [r["run_id"] for r in runs if _as_utc(r["logical_date"]) == wanted]
        ti = db.execute(
            "SELECT state, try_number FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = 'operate'",
            (OPERATIONS_DAG_ID, run_id),
        ).fetchone()
        xcom = db.execute(
            "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = 'operate' AND key = 'return_value'",
            (OPERATIONS_DAG_ID, run_id),
        ).fetchone()
    value = xcom["value"] if xcom else None
    if isinstance(value, bytes):
        value = value.decode()
    return {
        "run_id": run_id,
        "state": ti["state"],
        "tries": ti["try_number"],
        "xcom": json.loads(value) if value else None,
    }


def _as_utc(stored: str) -> datetime:
    moment = datetime.fromisoformat(stored)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def config_for(stack: Stack, project: str, **extra: Any) -> dict[str, Any]:
    config = stack.config([project], prefix=f"ops-{project[:8]}")
    config["retry"] = QUICK_RETRY
    config.update(extra)
    return config


def seeded(stack: Stack, count: int, seed: int, **kwargs: Any) -> tuple[str, set[str]]:
    """A new ACC project with photos in DAY: (its id, the ids of the photos the copy takes)."""
    project = str(uuid.uuid4())
    stack.seed_acc(project, count=count, start=iso(DAY), end=iso(DAY + timedelta(days=1)), seed=seed, **kwargs)
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]
    return project, {p["id"] for p in photos if not p.get("deletedAt") and p["mediaType"] in COPIED}


def window_conf(action: str, **extra: Any) -> dict[str, Any]:
    return {
        "action": action,
        "window_start": DAY.isoformat(),
        "window_end": (DAY + timedelta(days=1)).isoformat(),
        **extra,
    }


def in_buildpass(stack: Stack, ids: set[str]) -> Counter[str]:
    photos = stack.admin("buildpass", "GET", "/_admin/photos?builder_id=buil_demo")["photos"]
    return Counter(p["externalSourceId"] for p in photos if p["externalSourceId"] in ids)


@pytest.fixture(scope="module")
def pool(stack: Stack) -> str:
    """The pool the copy DAG's publish tasks use, made in the session's metadata DB as an operator would."""
    proc = subprocess.run(
        [stack.bin("airflow"), "pools", "set", "buildpass_api", "4", "BuildPass: 100 requests / 10 s per IP"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return "buildpass_api"


def test_check_passes_and_returns_a_summary_without_secrets(stack: Stack, pool: str) -> None:
    project, _ = seeded(stack, 2, seed=41)
    config = config_for(stack, project)
    rc, output, logical = operate(stack, config, {"action": "check"})
    assert rc == 0, output[-4000:]
    assert f"OK projects[0].acc_project_id {project}" in output
    assert "OK BuildPass connection buildpass_default" in output and "All checks passed" in output
    assert f"OK Airflow pool {pool}: exists" in output  # `airflow dags test` runs the task where the DB is
    ti = task_instance(stack, logical)
    assert ti["state"] == "success"
    assert ti["xcom"]["action"] == "check" and ti["xcom"]["problems"] == 0 and ti["xcom"]["checks"] >= 5
    assert stack.s3_secret not in json.dumps(ti["xcom"]) and stack.refresh_token not in output


def test_check_fails_once_naming_the_mapping_to_fix(stack: Stack, pool: str) -> None:
    project = str(uuid.uuid4())  # never seeded: ACC answers 404
    config = config_for(stack, project)
    rc, output, logical = operate(stack, config, {"action": "check"})
    assert rc != 0, output[-4000:]
    assert f"PROBLEM projects[0].acc_project_id {project}" in output
    assert "1 problem(s) found" in output
    ti = task_instance(stack, logical)
    assert (ti["state"], ti["tries"], ti["xcom"]) == ("failed", 1, None)  # AirflowFailException: no retry


def test_plan_logs_the_table_writes_the_run_report_and_copies_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, eligible = seeded(stack, 20, seed=42, deleted=2, videos=1)
    assert len(eligible) == 17
    config = config_for(stack, project)
    downloads = int(stack.admin("acc", "GET", "/_admin/stats")["requests"].get("oss", 0))
    rc, output, logical = operate(stack, config, window_conf("plan"))
    assert rc == 0, output[-4000:]
    [row] = [line for line in output.splitlines() if line.startswith(project)]
    assert row.split()[:4] == [project, "buil_demo/proj_demo", "20", "17"]
    assert "plan: 20 photo(s) listed in 1 page(s) [1/1 projects]" in output  # progress, in the task log
    ti = task_instance(stack, logical)
    assert ti["xcom"]["action"] == "plan"
    assert ti["xcom"]["totals"]["to_copy"] == 17 and ti["xcom"]["totals"]["skipped"] == 3
    window = Window(DAY, DAY + timedelta(days=1))
    key = f"{config['staging_prefix']}/windows/{window.id}/plan.json"
    assert ti["xcom"]["plan"] == key
    written = json.loads(stack.s3().get_object(Bucket=stack.bucket, Key=key)["Body"].read())
    assert written["run_id"] == ti["run_id"] and written["dry_run"] is True
    assert written["projects"][0]["skipped_reasons"] == {"deleted in ACC": 2, "mediaType VIDEO not copied": 1}
    # The run's Copy report tab finds the plan from the run's conf.
    env = stack.env(config)
    for name in ("AIRFLOW_VAR_ACC_BUILDPASS_CONFIG", "AIRFLOW_CONN_ACC_BUILDPASS_STAGING"):
        monkeypatch.setenv(name, env[name])
    located = locate_operation(window_conf("plan"))
    assert located.report == written and located.where == f"s3://{stack.bucket}/{key}"
    # A dry run: nothing downloaded, nothing in BuildPass, no report written for the window.
    assert int(stack.admin("acc", "GET", "/_admin/stats")["requests"].get("oss", 0)) == downloads
    assert in_buildpass(stack, eligible) == Counter()
    assert stack.report(config, window.id) is None


def test_plan_refuses_a_project_that_is_not_mapped_and_a_missing_window(stack: Stack) -> None:
    project, _ = seeded(stack, 1, seed=43)
    config = config_for(stack, project)
    rc, output, logical = operate(stack, config, window_conf("plan", projects=["not-mapped"]))
    assert rc != 0
    assert "Configuration error: ACC project(s) not-mapped not mapped" in output
    assert task_instance(stack, logical)["tries"] == 1
    rc, output, _ = operate(stack, config, {"action": "plan"})
    assert rc != 0
    assert "plan needs a window: give both 'window_start' and 'window_end'" in output


def test_replay_fails_while_a_photo_still_fails_then_copies_it_exactly_once(stack: Stack) -> None:
    project, eligible = seeded(stack, 4, seed=44)
    broken = sorted(eligible)[0]
    config = config_for(stack, project)
    start, end = DAY, DAY + timedelta(days=1)
    stack.admin("acc", "POST", f"/_admin/photos/{broken}/behaviour", {"download": "error500"})
    try:
        rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
        assert rc != 0, output[-3000:]
        assert in_buildpass(stack, eligible) == Counter(eligible - {broken})

        # Still broken: the replay fails, once, naming the photo; nothing else is sent again.
        rc, output, logical = operate(stack, config, window_conf("replay", projects=[project]))
        assert rc != 0, output[-4000:]
        [line] = [x for x in output.splitlines() if x.startswith(f"{project}  {broken}")]
        assert line.split()[2] == "failed"
        assert "1 photo(s) still failed" in output
        ti = task_instance(stack, logical)
        assert (ti["state"], ti["tries"], ti["xcom"]) == ("failed", 1, None)
    finally:
        stack.admin("acc", "POST", f"/_admin/photos/{broken}/behaviour", {"download": "ok"})

    rc, output, logical = operate(stack, config, window_conf("replay"))
    assert rc == 0, output[-4000:]
    # Progress in the task log: before the batch, then at the end.
    assert f"replay: replay {project[:8]}→proj_demo 1/1: 1 photo(s) [0/1 photos]" in output
    assert "replay: 1 created, 0 present, 0 failed" in output
    xcom = task_instance(stack, logical)["xcom"]
    assert xcom["action"] == "replay" and xcom["totals"]["created"] == 1 and xcom["totals"]["failed"] == 0
    window = Window(start, end)
    assert xcom["report"] == f"s3://{stack.bucket}/{config['staging_prefix']}/windows/{window.id}/report-replay.json"
    assert in_buildpass(stack, eligible) == Counter(eligible)
