"""The trigger forms: the operations DAG's Params and the copy DAG's window, as the UI receives
them (JSON Schema: types, enum, formats) and as Airflow validates a conf against them."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from acc_buildpass.settings import ACTIONS, OPERATIONS_DAG_ID

GOOD_WINDOW = {"window_start": "2026-03-01T00:00:00Z", "window_end": "2026-03-02T00:00:00+00:00"}


@pytest.fixture(scope="module")
def operations(dag_bag: Any) -> Any:
    return dag_bag.dags[OPERATIONS_DAG_ID]


def form(dag: Any) -> dict[str, dict[str, Any]]:
    """What the trigger form is drawn from: each Param's schema, title and description, serialized."""
    return {name: dag.params.get_param(name).serialize() for name in dag.params}


def accepts(dag: Any, conf: dict[str, Any]) -> bool:
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dag.params)
    try:
        params.update(conf)  # validates each value it sets
        params.validate()
    except ParamValidationError:
        return False
    return True


def test_the_operations_dag_is_manual_one_task_never_retried(operations) -> None:  # type: ignore[no-untyped-def]
    assert type(operations.timetable).__name__ == "NullTimetable"  # schedule=None: runs only when triggered
    assert [t.task_id for t in operations.tasks] == ["operate"]
    assert operations.get_task("operate").retries == 0
    assert set(operations.tags) >= {"acc", "buildpass", "operations"}
    assert "airflow dags trigger acc_buildpass_operations" in operations.doc_md


def test_the_form_offers_the_action_as_a_labelled_choice(operations) -> None:  # type: ignore[no-untyped-def]
    action = form(operations)["action"]
    assert action["value"] == "check"  # the default changes nothing
    assert action["schema"]["type"] == "string"
    assert action["schema"]["enum"] == list(ACTIONS) == ["check", "plan", "replay", "verify"]
    assert set(action["schema"]["values_display"]) == set(ACTIONS)
    assert action["schema"]["title"] == "Action" and action["description"]


def test_the_window_fields_are_optional_date_time_pickers(operations) -> None:  # type: ignore[no-untyped-def]
    fields = form(operations)
    for name in ("window_start", "window_end"):
        schema = fields[name]["schema"]
        assert fields[name]["value"] is None
        assert schema["type"] == ["null", "string"]  # optional: check needs no window
        assert schema["format"] == "date-time"  # the UI draws a date-time picker for this format
        assert schema["title"] and fields[name]["description"]
    projects = fields["projects"]["schema"]
    assert projects["type"] == ["null", "array"] and projects["items"]["type"] == "string"


@pytest.mark.parametrize(
    ("conf", "ok"),
    [
        ({"action": "plan", **GOOD_WINDOW}, True),
        ({"action": "replay", **GOOD_WINDOW, "projects": ["36c0838c-0360-4cfa-b2c6-85e0056ec7e8"]}, True),
        ({"action": "check"}, True),
        ({"action": "plan", "window_start": "2026-03-01T00:00", "window_end": "2026-03-01T06:30"}, True),
        ({"action": "copy-everything"}, False),
        ({"action": "plan", "window_start": "yesterday", "window_end": "2026-03-02T00:00:00Z"}, False),
        ({"action": "plan", "window_start": "2026-03-01", "window_end": "2026-03-02"}, False),  # no time
        ({"action": "plan", **GOOD_WINDOW, "projects": ["a", "a"]}, False),
        ({"action": "plan", **GOOD_WINDOW, "projects": "a"}, False),
    ],
)
def test_a_conf_is_validated_against_the_form(operations, conf: dict[str, Any], ok: bool) -> None:  # type: ignore[no-untyped-def]
    assert accepts(operations, conf) is ok


def test_the_copy_dag_offers_an_optional_window_and_keeps_scheduled_runs_as_they_were(dag_bag: Any) -> None:
    copy_dag = dag_bag.dags["acc_to_buildpass_photos"]
    fields = form(copy_dag)
    assert set(fields) == {"window_start", "window_end"}
    for field in fields.values():
        assert field["value"] is None
        assert field["schema"]["type"] == ["null", "string"] and field["schema"]["format"] == "date-time"
    assert accepts(copy_dag, {}) and accepts(copy_dag, GOOD_WINDOW)
    assert not accepts(copy_dag, {"window_start": "soon", "window_end": "later"})


def _context(params: dict[str, Any], conf: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "params": params,
        "dag_run": SimpleNamespace(conf=conf),
        "data_interval_start": datetime(2026, 3, 5, 10, tzinfo=UTC),
        "data_interval_end": datetime(2026, 3, 5, 11, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("params", "conf", "expected"),
    [
        # scheduled, or triggered with the form left empty: the data interval
        ({"window_start": None, "window_end": None}, {}, ("2026-03-05T10", "2026-03-05T11")),
        (
            {"window_start": None, "window_end": None},
            {"window_start": None, "window_end": None},
            ("2026-03-05T10", "2026-03-05T11"),
        ),
        # the form's values (params), the conf's (CLI, REST), and the conf over stale params
        (GOOD_WINDOW, None, ("2026-03-01T00", "2026-03-02T00")),
        ({"window_start": None, "window_end": None}, GOOD_WINDOW, ("2026-03-01T00", "2026-03-02T00")),
        (
            {"window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-02T00:00:00Z"},
            GOOD_WINDOW,
            ("2026-03-01T00", "2026-03-02T00"),
        ),
    ],
)
def test_the_copy_dag_reads_its_window_from_the_form_or_the_conf(
    params: dict[str, Any], conf: dict[str, Any] | None, expected: tuple[str, str]
) -> None:
    from acc_buildpass.dag_tasks import run_window

    window = run_window(_context(params, conf))
    assert (window.start.strftime("%Y-%m-%dT%H"), window.end.strftime("%Y-%m-%dT%H")) == expected


def test_one_bound_alone_is_a_configuration_error() -> None:
    from acc_buildpass.dag_tasks import run_window
    from acc_buildpass.errors import ConfigError

    with pytest.raises(ConfigError, match="give both 'window_start' and 'window_end'"):
        run_window(_context({"window_start": "2026-03-01T00:00:00Z", "window_end": None}, {}))
