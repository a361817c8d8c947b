"""The hooks' tests: connections from ``AIRFLOW_CONN_*`` (as a deployment sets them), and real
emulators for ``test_connection``, one per test module, stopped when the module ends."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sandbox

DefineConnection = Callable[..., None]


@pytest.fixture(scope="module")
def box() -> Iterator[sandbox.Sandbox]:
    with sandbox.start(seed=0) as running:
        yield running


@pytest.fixture
def define_connection(monkeypatch: pytest.MonkeyPatch) -> DefineConnection:
    """Define a connection the way a deployment does: ``AIRFLOW_CONN_<ID>`` as JSON."""

    def define(conn_id: str, **fields: Any) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))

    return define
