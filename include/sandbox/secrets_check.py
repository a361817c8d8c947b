"""Look for secrets where Airflow keeps what tasks said and returned: logs, XComs, rendered fields.

    secrets = stack.admin("acc", "GET", "/_admin/secrets") + stack.admin("buildpass", "GET", "/_admin/secrets")
    leaks = find_leaks(secrets + [stack.s3_key, stack.s3_secret], collect_airflow_texts(airflow_home))
    assert leaks == []

A leak is reported by where it was found and the first few characters of the secret only, so
that the report of a failing test does not leak the secret in its turn.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus

# (table, columns naming a row, columns whose text is searched). Tables or columns that the
# database does not have are skipped: the schema changes between Airflow versions.
DB_SOURCES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("xcom", ("dag_id", "run_id", "task_id", "map_index", "key"), ("value",)),
    (
        "rendered_task_instance_fields",
        ("dag_id", "run_id", "task_id", "map_index"),
        ("rendered_fields", "k8s_pod_yaml"),
    ),
    ("dag_run", ("dag_id", "run_id"), ("conf",)),
    ("log", ("id", "event", "dag_id", "task_id"), ("extra",)),
    ("asset_event", ("id", "source_dag_id", "source_run_id"), ("extra",)),
)


def secret_prefix(secret: str) -> str:
    """Enough of a secret to tell which one it is, never more than a quarter of it."""
    return secret[: max(1, min(6, len(secret) // 4))] + "..."


def _forms(secret: str) -> set[str]:
    """The secret as it could appear in a log line: raw, URL-encoded, or inside a JSON string."""
    in_json = json.dumps(secret)[1:-1]
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), in_json, in_json.replace("/", "\\/")}


def find_leaks(secrets: Iterable[str], texts: dict[str, str]) -> list[tuple[str, str]]:
    """Every (where, secret prefix) pair such that the text ``where`` contains that secret.

    Empty secrets are ignored (they are in every text); each pair is reported once, sorted.
    """
    forms = {secret: _forms(secret) for secret in dict.fromkeys(s for s in secrets if s)}
    found = {
        (where, secret_prefix(secret))
        for where, text in texts.items()
        for secret, variants in forms.items()
        if any(v in text for v in variants)
    }
    return sorted(found)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def collect_log_texts(airflow_home: Path) -> dict[str, str]:
    """Every file under ``AIRFLOW_HOME/logs`` (task logs and any other), keyed ``log:<relative path>``."""
    logs = Path(airflow_home) / "logs"
    texts: dict[str, str] = {}
    if not logs.is_dir():
        return texts
    for path in sorted(logs.rglob("*")):
        if path.is_file():
            texts[f"log:{path.relative_to(logs)}"] = path.read_bytes().decode("utf-8", errors="replace")
    return texts


def collect_db_texts(database: Path) -> dict[str, str]:
    """XCom values, rendered task fields, run confs, audit-log and asset-event extras of an Airflow SQLite DB.

    Keys are ``<table>:<row naming columns joined by '/'>:<column>``. A missing file gives nothing.
    """
    texts: dict[str, str] = {}
    if not Path(database).is_file():
        return texts
    # Read-only: a scheduler may still be writing to it.
    connection = sqlite3.connect(f"file:{Path(database).resolve()}?mode=ro", uri=True, timeout=30)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table, naming, searched in DB_SOURCES:
            if table not in tables:
                continue
            columns = {row[1] for row in connection.execute(f'PRAGMA table_info("{table}")')}
            name_cols = [c for c in naming if c in columns]
            text_cols = [c for c in searched if c in columns]
            if not text_cols:
                continue
            selected = ", ".join(f'"{c}"' for c in (*name_cols, *text_cols))
            for n, row in enumerate(connection.execute(f'SELECT {selected} FROM "{table}"')):  # noqa: S608
                name = "/".join(_text(v) for v in row[: len(name_cols)]) or str(n)
                for column, value in zip(text_cols, row[len(name_cols) :], strict=True):
                    if value is not None:
                        texts[f"{table}:{name}:{column}"] = _text(value)
    finally:
        connection.close()
    return texts


def collect_airflow_texts(airflow_home: Path) -> dict[str, str]:
    """Task logs under ``AIRFLOW_HOME/logs`` plus what ``AIRFLOW_HOME/airflow.db`` keeps of task output."""
    home = Path(airflow_home)
    return {**collect_log_texts(home), **collect_db_texts(home / "airflow.db")}
