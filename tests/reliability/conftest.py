"""The reliability suite runs with each emulator's worst answers to what the vendors' docs leave
open (include/sandbox/SPEC.md, "answers"), and puts today's answers back after each test, as the
session's emulators are shared with the other suites.

ACC: sizes 0 or absent, mediaTypes not listed today, a storage clock ahead, cursors that break.
BuildPass: tight request limits, bulk-upload answers shuffled, the token call refused without the
API version, upsert replies that leave photos out (and name none by key), capped listings.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sandbox.stack import Stack


@pytest.fixture(autouse=True)
def worst_answers(stack: Stack) -> Iterator[None]:
    for api in ("acc", "buildpass"):
        stack.admin(api, "POST", "/_admin/answers", {"preset": "worst"})
    yield
    for api in ("acc", "buildpass"):
        stack.admin(api, "POST", "/_admin/answers", {"preset": "default"})
