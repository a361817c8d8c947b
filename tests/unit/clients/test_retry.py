from __future__ import annotations

import pytest
from acc_buildpass.clients import retry
from acc_buildpass.errors import BadRequest, RateLimited, ServerError, TransportError

FAST = retry.RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.002, max_retry_after=0.01)


def test_transient_errors_are_retried_until_success() -> None:
    failures = [ServerError("boom", status=503), TransportError("reset"), RateLimited("slow down", retry_after=0.0)]
    calls = []

    def flaky() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"

    assert retry.call(FAST, flaky, describe="test") == "ok"
    assert len(calls) == 4


def test_other_4xx_are_final() -> None:
    calls = []

    def bad() -> None:
        calls.append(1)
        raise BadRequest("no", status=400)

    with pytest.raises(BadRequest):
        retry.call(FAST, bad, describe="test")
    assert len(calls) == 1


def test_attempts_are_bounded() -> None:
    calls = []

    def down() -> None:
        calls.append(1)
        raise ServerError("down", status=500)

    with pytest.raises(ServerError):
        retry.call(FAST, down, describe="test")
    assert len(calls) == FAST.attempts


def test_non_idempotent_calls_replay_only_when_nothing_was_sent() -> None:
    assert retry.is_safe_to_replay(TransportError("refused", sent=False))
    assert retry.is_safe_to_replay(RateLimited("429"))
    assert not retry.is_safe_to_replay(TransportError("reset after sending", sent=True))
    assert not retry.is_safe_to_replay(ServerError("500", status=500))


def test_server_asked_wait_wins_and_is_bounded() -> None:
    policy = retry.RetryPolicy(initial_wait=1, max_wait=4, max_retry_after=30)
    assert 25 <= retry.backoff_seconds(policy, 1, RateLimited("x", retry_after=25)) < 25.3
    assert retry.backoff_seconds(policy, 1, RateLimited("x", retry_after=999)) < 30.3
    waits = [retry.backoff_seconds(policy, n, ServerError("x")) for n in range(1, 8)]
    assert all(0.5 <= w <= 4 for w in waits)
    assert waits[-1] >= 2  # grown to the bound
