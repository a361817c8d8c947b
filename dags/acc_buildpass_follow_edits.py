"""
### Follow ACC edits into BuildPass

Once a day, for the photos created in ACC in the last **days** days that were copied: when a
photo's title, description or camera time changed in ACC, the BuildPass photo is patched
(`fileName`, `description`, `capturedAt`, mapped as at copy time), and only the fields that
differ; a second run patches nothing. Photos deleted in ACC are reported and left in BuildPass:
BuildPass documents no way to delete one photo, so the `delete` policy reports them as failed.

The task logs the summary (looked at, patched, unchanged, deleted in ACC, failed with names and
reasons), returns it as its XCom, and fails when a photo could not be updated. Same
configuration as `acc_to_buildpass_photos`; the command line's `acc-buildpass follow-edits`
does the same. **Trigger** with the form to change the period, the policy or to dry-run.

Environment: `ACC_BUILDPASS_FOLLOW_SCHEDULE` (cron, default `30 2 * * *`),
`ACC_BUILDPASS_FOLLOW_DAYS` (default 7), `ACC_BUILDPASS_POOL` (default `buildpass_api`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from acc_buildpass import settings
from airflow.sdk import Param, dag, get_current_context, task

SCHEDULE = os.environ.get("ACC_BUILDPASS_FOLLOW_SCHEDULE", "30 2 * * *")
DAYS = int(os.environ.get("ACC_BUILDPASS_FOLLOW_DAYS", str(settings.DEFAULT_FOLLOW_DAYS)))
POOL = settings.pool()


@dag(
    dag_id=settings.FOLLOW_EDITS_DAG_ID,
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,  # each run looks back over its own days: missed days need no catching up
    max_active_runs=1,
    doc_md=__doc__,
    tags=["acc", "buildpass", "photos"],
    default_args={"owner": "acc-buildpass", "retries": 2, "retry_delay": timedelta(minutes=5)},
    params={
        "days": Param(
            DAYS,
            type="integer",
            minimum=1,
            maximum=366,
            title="Days",
            description="Photos created in ACC in the last this many days are compared.",
        ),
        "delete_policy": Param(
            settings.DEFAULT_DELETE_POLICY,
            type="string",
            enum=list(settings.DELETE_POLICIES),
            values_display={
                "report": "Report photos deleted in ACC, leave them in BuildPass",
                "delete": "Delete them in BuildPass (not possible: reported as failed)",
            },
            title="Photos deleted in ACC",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Compare only: nothing is patched."),
    },
)
def acc_buildpass_follow_edits() -> None:
    from acc_buildpass import dag_tasks as tasks

    @task(pool=POOL)
    def follow_edits() -> dict[str, Any]:
        return tasks.follow_edits(get_current_context()["params"])

    follow_edits()


acc_buildpass_follow_edits()
