"""The DAGs' trigger forms (Airflow Params): the fields more than one DAG offers, and the
actions of the DAG ``acc_buildpass_operations`` (its task and its Copy report tab read them too).

Imported at DAG parse time: nothing here but Airflow's ``Param``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

OPERATIONS_DAG_ID = "acc_buildpass_operations"
ACTIONS = ("check", "plan", "replay")
DEFAULT_ACTION = "check"  # the one that changes nothing

# ISO 8601 with a time; the zone is optional (UTC when none), as ``records.parse_time`` reads it.
# JSON Schema's "date-time" format shows the form's picker, but Airflow checks formats only when
# an optional validator package is installed: the pattern is what refuses "yesterday".
DATE_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$"


def window_bound(title: str, description: str, section: str | None = None) -> Param:
    """A window start or end: empty (None) by default, else an ISO 8601 date-time."""
    extra: dict[str, Any] = {"section": section} if section else {}
    return Param(
        None,
        type=["null", "string"],
        format="date-time",
        pattern=DATE_TIME_PATTERN,
        title=title,
        description=description,
        **extra,
    )
