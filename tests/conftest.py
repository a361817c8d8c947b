"""Session fixtures: one S3 server (SeaweedFS) and one emulator process for the whole session.

Tests that need them isolate themselves by their own ACC project and staging prefix, so they
never depend on each other or on their order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from sandbox.stack import Stack

RunDag = Callable[[datetime, datetime, dict[str, Any]], tuple[int, str, Any]]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with Stack.start(tmp_path_factory.mktemp("stack") / "root", seed=3) as running:
        yield running


@pytest.fixture
def run_dag(stack: Stack) -> RunDag:
    """Run the real DAG with ``airflow dags test`` for [start, end): (exit code, output, report)."""

    def run(start: datetime, end: datetime, config: dict[str, Any]) -> tuple[int, str, Any]:
        from acc_buildpass.models import Window

        rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
        return rc, output, stack.report(config, Window(start, end).id)

    return run
