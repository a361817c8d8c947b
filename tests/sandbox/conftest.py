"""The emulator tests' sandbox: one emulator process per seed for the whole session, both
emulators reset before each test (state, faults, counters). A module picks its seed with ``SEED``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import sandbox

_started: dict[int, sandbox.Sandbox] = {}


@pytest.fixture(scope="session", autouse=True)
def _stop_sandboxes() -> Iterator[None]:
    yield
    for instance in _started.values():
        instance.stop()
    _started.clear()


@pytest.fixture
def box(request: pytest.FixtureRequest) -> sandbox.Sandbox:
    seed = int(getattr(request.module, "SEED", 0))
    if seed not in _started:
        _started[seed] = sandbox.start(seed=seed)
    return _started[seed]


@pytest.fixture(autouse=True)
def fresh(box: sandbox.Sandbox) -> None:
    for url in (box.acc_url, box.buildpass_url):
        assert requests.post(url + "/_admin/reset", timeout=5).status_code == 200
