"""The one retry policy for every HTTP call of both APIs.

Retried: 429 (waiting what the server asked: ACC's ``Retry-After``, BuildPass's
``X-RateLimit-Reset``), 5xx, connection errors, timeouts and truncated bodies. Other 4xx are
final. Calls that are not idempotent are replayed only when the server cannot have acted.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from acc_buildpass.errors import RateLimited, ServerError, TransportError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    :param attempts: calls in all, the first included
    :param initial_wait: seconds before the first retry, doubled for each later one
    :param max_wait: bound on one exponential wait
    :param max_retry_after: bound on a wait the server asked for
    """

    attempts: int = 8
    initial_wait: float = 1.0
    max_wait: float = 60.0
    max_retry_after: float = 300.0

    @classmethod
    def from_config(cls, raw: dict[str, object] | None) -> RetryPolicy:
        raw = raw or {}
        known = {k: raw[k] for k in ("attempts", "initial_wait", "max_wait", "max_retry_after") if k in raw}
        return cls(**known)  # type: ignore[arg-type]


def is_retryable(exc: BaseException) -> bool:
    """For idempotent calls: anything transient."""
    return isinstance(exc, (RateLimited, ServerError, TransportError))


def is_safe_to_replay(exc: BaseException) -> bool:
    """For calls that are not idempotent: only when the server did not act on the request."""
    if isinstance(exc, RateLimited):
        return True
    return isinstance(exc, TransportError) and not exc.sent


def backoff_seconds(policy: RetryPolicy, attempt: int, exc: BaseException | None) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        # A little jitter so parallel workers do not come back in the same millisecond.
        return min(max(exc.retry_after, 0.0), policy.max_retry_after) + random.uniform(0, 0.25)
    ceiling = min(policy.max_wait, policy.initial_wait * 2 ** (attempt - 1))
    return random.uniform(ceiling / 2, ceiling)


def call(
    policy: RetryPolicy,
    fn: Callable[[], T],
    *,
    describe: str,
    retry_if: Callable[[BaseException], bool] = is_retryable,
) -> T:
    """Call ``fn`` until it succeeds, raises a final error, or the attempts run out.

    :param describe: what the call does, for the log line before each wait (no secrets)
    :raises: the last error ``fn`` raised
    """

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        return backoff_seconds(policy, state.attempt_number, exc)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s failed (attempt %d of %d): %s; retrying in %.1f s",
            describe,
            state.attempt_number,
            policy.attempts,
            exc,
            state.next_action.sleep if state.next_action else 0.0,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(retry_if),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)
