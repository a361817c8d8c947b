"""The copy DAG is wired as documented, and its schedule tiles time (what every DAG must be:
test_dag_integrity.py)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest


@pytest.fixture(scope="module")
def dag(dag_bag: Any) -> Any:
    return dag_bag.dags["acc_to_buildpass_photos"]


def test_tasks_and_retries(dag) -> None:  # type: ignore[no-untyped-def]
    assert {t.task_id for t in dag.tasks} == {"extract", "copy_batch", "report"}
    assert "exactly once" in dag.doc_md
    for t in dag.tasks:
        if t.task_id != "report":
            assert t.retries >= 1 and t.retry_exponential_backoff
    assert dag.get_task("copy_batch").pool == "buildpass_api"
    assert dag.get_task("report").trigger_rule == "all_done"
    assert dag.get_task("copy_batch").map_index_template == "{{ batch_label }}"


def test_consecutive_runs_tile_time_without_gap_or_overlap(dag) -> None:  # type: ignore[no-untyped-def]
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction

    restriction = TimeRestriction(earliest=pendulum.datetime(2026, 1, 1, tz="UTC"), latest=None, catchup=True)
    last: DataInterval | None = None
    intervals = []
    for _ in range(5):
        info = dag.timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        assert info is not None
        last = info.data_interval
        intervals.append(last)
    for interval in intervals:
        assert (interval.end - interval.start).total_seconds() == 3600
    for before, after in itertools.pairwise(intervals):
        assert before.end == after.start


def test_whichever_task_ends_the_window_updates_the_manifest_asset_and_there_is_a_tab(dag) -> None:  # type: ignore[no-untyped-def]
    from acc_buildpass.ui.report_view import DAG_ID

    # extract ends a small window (and short-circuits the rest), report a big one: both may add
    # the event of Asset acc_buildpass_manifest through one alias, and only when all was copied.
    for task_id in ("extract", "report"):
        (outlet,) = dag.get_task(task_id).outlets
        assert type(outlet).__name__ == "AssetAlias" and outlet.name == "acc_buildpass_window_copied"
    assert type(dag.get_task("extract")).__name__ == "_ShortCircuitDecoratedOperator"
    assert dag.dag_id == DAG_ID  # the "Copy report" tab finds reports for this DAG's runs
