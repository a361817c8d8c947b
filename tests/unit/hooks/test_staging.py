"""The staging store: the aws connection required first, and the three profiles of retries and
timeouts (task, check, UI) on the S3 client it builds."""

from __future__ import annotations

from typing import Any

import pytest
from acc_buildpass.errors import ConfigError
from acc_buildpass.hooks import staging
from acc_buildpass.hooks.staging import CHECK, PROFILES, TASK, UI, staging_store
from acc_buildpass.storage import Layout, Store

from tests.unit.hooks.conftest import DefineConnection

LAYOUT = Layout("acc-buildpass-staging", "acc-photos")
S3_CONNECTION: dict[str, Any] = {
    "conn_type": "aws",
    "login": "AKIASTAGINGTEST",
    "password": "staging-secret-key",
    "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
}


def test_the_three_profiles_keep_their_values() -> None:
    assert (TASK.max_attempts, TASK.connect_timeout, TASK.read_timeout) == (10, 10, 120)
    assert (CHECK.max_attempts, CHECK.connect_timeout, CHECK.read_timeout) == (3, 5, 120)
    assert (UI.max_attempts, UI.connect_timeout, UI.read_timeout) == (3, 5, 20)
    assert PROFILES == {"task": TASK, "check": CHECK, "ui": UI}


@pytest.mark.parametrize(
    ("profile", "retries", "connect", "read"),
    [
        # botocore counts the first call in total_max_attempts: max_attempts retries + 1
        (TASK, {"mode": "standard", "total_max_attempts": 11}, 10, 120),
        (CHECK, {"mode": "standard", "total_max_attempts": 4}, 5, 120),
        (UI, {"mode": "standard", "total_max_attempts": 4}, 5, 20),
    ],
    ids=lambda value: getattr(value, "name", None),
)
def test_the_store_is_built_from_the_connection_with_the_profile(
    define_connection: DefineConnection, profile: staging.S3Profile, retries: dict[str, Any], connect: int, read: int
) -> None:
    define_connection("acc_buildpass_staging", **S3_CONNECTION)
    store = staging_store("acc_buildpass_staging", LAYOUT, profile)
    assert isinstance(store, Store) and store.layout == LAYOUT and store.bucket == "acc-buildpass-staging"
    config = store.s3.meta.config
    assert (config.retries, config.connect_timeout, config.read_timeout) == (retries, connect, read)
    assert store.s3.meta.endpoint_url == "http://127.0.0.1:9"  # the connection's extra, not the environment's
    assert store.s3.meta.region_name == "us-east-1"


def test_without_the_connection_no_client_is_made_from_ambient_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_ACC_BUILDPASS_STAGING", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENT")  # what boto3 would otherwise fall back to
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient-secret")
    made: list[Any] = []
    monkeypatch.setattr(staging, "S3Hook", lambda **kwargs: made.append(kwargs))
    with pytest.raises(ConfigError, match=r"connection 'acc_buildpass_staging' is not defined: set AIRFLOW_CONN_"):
        staging_store("acc_buildpass_staging", LAYOUT)
    assert made == []
