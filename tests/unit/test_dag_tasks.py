"""A bad window or an unusable bucket: one line that says what to fix, and no task retry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from acc_buildpass.config import resolve_window
from acc_buildpass.dag_tasks import final_on_config_error
from acc_buildpass.errors import ConfigError
from acc_buildpass.storage import Layout, Store
from botocore.exceptions import ClientError


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2026-03-02T00:00:00Z", "2026-03-01T00:00:00Z"),  # end before start
        ("2026-03-02T00:00:00Z", "2026-03-02T00:00:00"),  # empty: the same moment, with and without a zone
        ("2026-03-02T01:00:00Z", "2026-03-02T10:00:00+10:00"),  # reads later, is 00:00 UTC: before the start
    ],
)
def test_window_end_not_after_its_start_is_one_line_naming_both_keys(start: str, end: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_window({"window_start": start, "window_end": end}, None, None)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("invalid window: window end 20")
    assert "is not after its start" in message
    assert message.endswith("give ISO 8601 'window_start' < 'window_end'")


def test_a_reversed_data_interval_is_refused_too() -> None:
    with pytest.raises(ConfigError, match="is not after its start"):
        resolve_window({}, datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


def test_offsets_are_compared_in_utc() -> None:
    # 23:00 on 1 March at -05:00 is 04:00 UTC on 2 March: after the start, though it reads earlier
    window = resolve_window(
        {"window_start": "2026-03-02T00:00:00Z", "window_end": "2026-03-01T23:00:00-05:00"}, None, None
    )
    assert window.end == datetime(2026, 3, 2, 4, tzinfo=UTC)


def test_a_config_error_fails_the_task_at_once_with_its_line() -> None:
    from airflow.sdk.exceptions import AirflowFailException

    @final_on_config_error
    def step() -> None:
        resolve_window({"window_start": "2026-03-02T00:00:00Z", "window_end": "2026-03-01T00:00:00Z"}, None, None)

    with pytest.raises(AirflowFailException, match=r"^Configuration error: invalid window: .*'window_start' <"):
        step()


class _NoBucket:
    def head_bucket(self, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "404", "Message": "Not Found"}}, "HeadBucket")


def test_a_missing_bucket_names_the_bucket_and_the_keys_to_fix() -> None:
    store = Store(_NoBucket(), Layout("acc-photos-nope", "acc-photos"))
    with pytest.raises(ConfigError) as caught:
        store.check_bucket()
    message = str(caught.value)
    assert "\n" not in message
    assert "staging bucket 'acc-photos-nope' is not usable (404)" in message
    assert "'staging_bucket'" in message and "acc_buildpass_staging" in message
