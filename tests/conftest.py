"""Session fixtures: one S3 server (SeaweedFS) and one emulator process per session (one per
xdist worker under `make test`), not per test.

Tests that need them isolate themselves by their own ACC project and staging prefix, so they
never depend on each other or on their order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from sandbox.stack import Stack

RunDag = Callable[[datetime, datetime, dict[str, Any]], tuple[int, str, Any]]


def pytest_configure(config: pytest.Config) -> None:
    """Airflow imported by the tests reads a home of this session's own (one per xdist worker),
    never the user's ``~/airflow``: two workers never write one ``airflow.cfg`` at once."""
    home = tempfile.mkdtemp(prefix="acc-buildpass-tests-airflow-")
    config.stash[_HOME] = home
    os.environ["AIRFLOW_HOME"] = home


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(config.stash.get(_HOME, ""), ignore_errors=True)


_HOME = pytest.StashKey[str]()


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
