"""The hooks' tests: connections from ``AIRFLOW_CONN_*`` (as a deployment sets them), and real
emulators for ``test_connection`` (``box``, from tests/unit/conftest.py: one for the session)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

DefineConnection = Callable[..., None]


@pytest.fixture
def define_connection(monkeypatch: pytest.MonkeyPatch) -> DefineConnection:
    """Define a connection the way a deployment does: ``AIRFLOW_CONN_<ID>`` as JSON."""

    def define(conn_id: str, **fields: Any) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))

    return define
