"""The DAG file parses, is wired as documented, and its schedule tiles time."""

from __future__ import annotations

import itertools
from importlib.metadata import entry_points
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dag():  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags["acc_to_buildpass_photos"]


def test_tasks_tags_and_retries(dag) -> None:  # type: ignore[no-untyped-def]
    assert {t.task_id for t in dag.tasks} == {"extract", "batch.stage", "batch.publish", "report"}
    assert set(dag.tags) >= {"acc", "buildpass"}
    assert dag.doc_md and "exactly once" in dag.doc_md
    for t in dag.tasks:
        if t.task_id != "report":
            assert t.retries >= 1 and t.retry_exponential_backoff
    assert dag.get_task("batch.publish").pool == "buildpass_api"
    assert dag.get_task("report").trigger_rule == "all_done"
    assert dag.get_task("batch.stage").map_index_template == "{{ batch_label }}"


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


def test_nothing_heavy_at_parse_time() -> None:
    source = (DAGS / "acc_to_buildpass_photos.py").read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not any("pandas" in line or "requests" in line or "boto3" in line for line in top_level)


def test_connection_types_are_registered_for_the_ui() -> None:
    (provider,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("acc_buildpass")]
    info = provider.load()()
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert set(types) == {"acc", "buildpass"}
    assert types["acc"]["ui-field-behaviour"]["relabeling"]["password"] == "Client secret"
    assert types["acc"]["conn-fields"]["refresh_token"]["schema"]["format"] == "password"
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(__import__(module, fromlist=[name]), name)
        assert hook.conn_type == conn["connection-type"]


def test_airflow_lists_our_connection_types() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "acc-buildpass" in manager.providers
    assert manager.field_behaviours["acc"]["relabeling"]["login"] == "Client ID"


def test_the_report_task_updates_the_manifest_asset_and_has_a_tab(dag) -> None:  # type: ignore[no-untyped-def]
    from acc_buildpass.ui.report_view import DAG_ID

    (outlet,) = dag.get_task("report").outlets
    assert (outlet.name, outlet.uri) == ("acc_buildpass_manifest", "acc_buildpass_manifest")
    assert dag.dag_id == DAG_ID  # the "Copy report" tab finds reports for this DAG's runs
