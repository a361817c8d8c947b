"""The names everything shares: the Variable, the DAG ids, the pool, the policies, and the trigger
forms' fields as plain data (the DAG files build Airflow ``Param`` objects from them).

Imported at DAG parse time, by the CLI and by the UI plugin: plain constants, no imports.
"""

from __future__ import annotations

from typing import Any

VARIABLE = "acc_buildpass_config"
COPY_DAG_ID = "acc_to_buildpass_photos"
OPERATIONS_DAG_ID = "acc_buildpass_operations"
FOLLOW_EDITS_DAG_ID = "acc_buildpass_follow_edits"

POOL_ENV = "ACC_BUILDPASS_POOL"  # the BuildPass-bound tasks' pool, named in the environment
DEFAULT_POOL = "buildpass_api"
POOL_HINT = '"BuildPass: 100 requests / 10 s per IP"'  # the description `acc-buildpass check` suggests

PUBLISH_MODES = ("bulk", "single")
DELETE_POLICIES = ("report", "delete")  # follow-edits: what to do with a photo deleted in ACC
DEFAULT_DELETE_POLICY = "report"
DEFAULT_FOLLOW_DAYS = 7

ACTIONS = ("check", "plan", "replay", "verify")  # the DAG acc_buildpass_operations
DEFAULT_ACTION = "check"  # the one that changes nothing
ACTION_LABELS = {
    "check": "Check: connections, bucket, project mappings",
    "plan": "Plan: dry run of a window (nothing copied)",
    "replay": "Replay: retry a window's failed photos",
    "verify": "Verify: read BuildPass back and reconcile a window",
}

# ISO 8601 with a time; the zone is optional (UTC when none), as ``models.parse_time`` reads it.
# JSON Schema's "date-time" format shows the form's picker, but Airflow checks formats only when
# an optional validator package is installed: the pattern is what refuses "yesterday".
DATE_TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$"
WINDOW_KEYS = ("window_start", "window_end")


def window_bound(title: str, description: str, section: str | None = None) -> dict[str, Any]:
    """A window start or end field: empty (None) by default, else an ISO 8601 date-time.

    :returns: the keyword arguments of ``Param`` (its default first, as ``default``)
    """
    field: dict[str, Any] = {
        "default": None,
        "type": ["null", "string"],
        "format": "date-time",
        "pattern": DATE_TIME_PATTERN,
        "title": title,
        "description": description,
    }
    if section:
        field["section"] = section
    return field


def pool() -> str:
    """The pool of the BuildPass-bound tasks, as the DAG files and ``check`` read it."""
    import os

    return os.environ.get(POOL_ENV) or DEFAULT_POOL
