"""The follow-edits DAG runs daily and offers its params as a trigger form (what every DAG must
be: test_dag_integrity.py)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def dag(dag_bag: Any) -> Any:
    return dag_bag.dags["acc_buildpass_follow_edits"]


def test_one_task_daily_in_the_pool(dag) -> None:  # type: ignore[no-untyped-def]
    assert [t.task_id for t in dag.tasks] == ["follow_edits"]
    task = dag.get_task("follow_edits")
    assert task.pool == "buildpass_api" and task.retries >= 1
    assert dag.timetable.expression == "30 2 * * *" and dag.catchup is False and dag.max_active_runs == 1
    assert "patched" in dag.doc_md and "deleted in ACC" in dag.doc_md


def test_params_make_a_form_and_refuse_bad_values(dag) -> None:  # type: ignore[no-untyped-def]
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    params = dag.params
    assert params.dump() == {"days": 7, "delete_policy": "report", "dry_run": False}
    schema = {name: params.get_param(name).schema for name in ("days", "delete_policy", "dry_run")}
    assert schema["days"]["type"] == "integer" and (schema["days"]["minimum"], schema["days"]["maximum"]) == (1, 366)
    assert schema["delete_policy"]["enum"] == ["report", "delete"]
    assert set(schema["delete_policy"]["values_display"]) == {"report", "delete"}
    assert schema["dry_run"]["type"] == "boolean"
    assert all(schema[name].get("title") for name in schema)  # labels in the trigger form

    def validate(**conf: object) -> dict[str, object]:
        merged = ParamsDict(dict(params.items()))
        merged.update(conf)
        return merged.validate()

    assert validate(days=2, dry_run=True)["days"] == 2
    for bad in ({"days": 0}, {"days": "seven"}, {"delete_policy": "purge"}, {"dry_run": "yes"}):
        with pytest.raises(ParamValidationError, match=f"Invalid input for param {next(iter(bad))}"):
            validate(**bad)
