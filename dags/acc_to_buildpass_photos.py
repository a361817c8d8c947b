"""
### Copy ACC photos into BuildPass

For each time window (by default the hour the run covers), every mapped Autodesk
Construction Cloud project is listed, the photos created in `[window start, window end)` are
staged in object storage, then created in the mapped BuildPass project, exactly once.

- **extract**: pages through ACC, skips deleted photos and media types not copied, writes the
  manifest (Parquet) to the staging bucket; XCom carries only keys and counts. A window of at
  most `batch_size` photos (an hourly run, an empty window) is copied right here, in this one
  task, which then writes the report and skips the rest: the tasks below run for big windows.
- **copy_batch** (mapped, one per batch, pool `buildpass_api`): streams the bytes to object
  storage, verified and hashed, and meanwhile uploads those staged and creates the photos.
- **report**: reconciles each project (found, skipped and why, created, already present, failed)
  and fails the run, naming the photos, when any could not be copied. The report is the run's
  **Copy report** tab; a run that copied everything updates the Asset `acc_buildpass_manifest`
  (extra: the bucket, manifest keys, report key and totals) for downstream DAGs.

Configuration: Variable `acc_buildpass_config`; connections `acc_default`, `buildpass_default`,
`acc_buildpass_staging`. To copy any window by hand, **Trigger** with the form's window start and
end (or the conf `{"window_start": "...", "window_end": "..."}`); left empty, a run copies its
data interval. See the README.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from acc_buildpass import settings
from airflow.sdk import Asset, AssetAlias, Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable

SCHEDULE = os.environ.get("ACC_BUILDPASS_SCHEDULE", "0 * * * *")
START = os.environ.get("ACC_BUILDPASS_START_DATE", "2026-01-01T00:00:00+00:00")
POOL = settings.pool()
# Downstream DAGs: schedule=[Asset("acc_buildpass_manifest")]; the event's extra locates the window.
MANIFEST = Asset("acc_buildpass_manifest")
# Whichever task finishes the window (extract for a small one, report for a big one) adds the event.
COPIED = AssetAlias("acc_buildpass_window_copied")


@dag(
    dag_id=settings.COPY_DAG_ID,
    # Real data intervals: run N covers [start, end) and run N+1 starts where N ended.
    schedule=CronDataIntervalTimetable(SCHEDULE, timezone="UTC"),
    start_date=pendulum.parse(START),
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["acc", "buildpass", "photos"],
    # Scheduled runs keep these empty and copy their data interval.
    params={
        "window_start": Param(
            **settings.window_bound(
                "Window start", "Copy the photos created at or after this time. Empty: the run's data interval."
            )
        ),
        "window_end": Param(
            **settings.window_bound("Window end", "Copy the photos created before this time. Empty: as above.")
        ),
    },
    default_args={
        "owner": "acc-buildpass",
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
)
def acc_to_buildpass_photos() -> None:
    from acc_buildpass import dag_tasks as tasks

    # Returns the batches of a big window; [] when it copied the window itself (skipping the rest).
    @task.short_circuit(outlets=[COPIED])
    def extract() -> list[dict[str, Any]]:
        return tasks.extract(get_current_context(), copied=COPIED, manifest=MANIFEST)

    @task(map_index_template="{{ batch_label }}", pool=POOL)
    def copy_batch(batch: dict[str, Any]) -> dict[str, Any]:
        return tasks.copy_batch(batch, get_current_context())

    @task(trigger_rule="all_done", retries=0, outlets=[COPIED])
    def report(batches: list[dict[str, Any]] | None) -> dict[str, Any]:
        return tasks.report(batches, get_current_context(), copied=COPIED, manifest=MANIFEST)

    batches = extract()
    copy_batch.expand(batch=batches) >> report(batches)


acc_to_buildpass_photos()
