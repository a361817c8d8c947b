"""The emulators for the unit tests that need the APIs' real behaviour (signed URLs, bad files,
idempotent upserts, sign-in): one process for the whole session, both APIs reset before each test
that uses them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import sandbox


@pytest.fixture(scope="session")
def emulators() -> Iterator[sandbox.Sandbox]:
    with sandbox.start(seed=0) as running:
        yield running


@pytest.fixture
def box(emulators: sandbox.Sandbox) -> sandbox.Sandbox:
    """Both emulators as they start: demo clients, default answers, no fault, no request counted."""
    for url in (emulators.acc_url, emulators.buildpass_url):
        assert requests.post(url + "/_admin/reset", timeout=5).status_code == 200
    return emulators
