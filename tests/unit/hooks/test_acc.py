"""AccHook: the connection read once and masked, the client it builds, and a Test button that
signs in against the real ACC emulator without ever spending the refresh token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
import sandbox
from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.endpoints import ACC_BASE_URL, ACC_TOKEN
from acc_buildpass.errors import ConfigError
from acc_buildpass.hooks import acc as acc_hook
from acc_buildpass.hooks import connections
from acc_buildpass.hooks.acc import AccHook
from sandbox.acc import DEFAULT_CLIENT

from tests.unit.hooks.conftest import DefineConnection


def new_refresh_token(box: sandbox.Sandbox) -> str:
    response = requests.post(box.acc_url + "/_admin/refresh-token", json={"client_id": DEFAULT_CLIENT[0]}, timeout=5)
    assert response.status_code == 200, response.text
    token: str = response.json()["refresh_token"]
    return token


def refresh(box: sandbox.Sandbox, refresh_token: str) -> requests.Response:
    return requests.post(
        box.acc_url + ACC_TOKEN,
        auth=DEFAULT_CLIENT,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": "data:read"},
        timeout=5,
    )


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the hook registers with Airflow's secrets masker."""
    seen: list[str] = []
    monkeypatch.setattr(acc_hook, "mask_secret", seen.append)
    monkeypatch.setattr(connections, "mask_secret", seen.append)
    return seen


def acc_connection(box: sandbox.Sandbox, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "conn_type": "acc",
        "host": box.acc_url,
        "login": DEFAULT_CLIENT[0],
        "password": DEFAULT_CLIENT[1],
        "extra": {"refresh_token": new_refresh_token(box), "token_store": str(tmp_path / "tokens")},
    }
    return {**fields, **overrides}


def test_the_test_button_checks_the_client_and_leaves_the_refresh_token_unspent(
    box: sandbox.Sandbox, define_connection: DefineConnection, masked: list[str], tmp_path: Path
) -> None:
    fields = acc_connection(box, tmp_path)
    define_connection("acc_default", **fields)
    ok, message = AccHook().test_connection()
    assert ok, message
    assert message == "ACC accepted the client id and secret (the refresh token is not spent by a test)"
    refresh_token = fields["extra"]["refresh_token"]
    assert DEFAULT_CLIENT[1] in masked and refresh_token in masked
    assert len(masked) == 3  # and the two-legged access token the check received
    assert not (tmp_path / "tokens").exists()  # no refresh, so nothing stored
    assert refresh(box, refresh_token).status_code == 200  # still the live one: a spent token is invalid_grant


def test_a_refused_secret_is_a_failed_test_that_does_not_quote_it(
    box: sandbox.Sandbox, define_connection: DefineConnection, masked: list[str], tmp_path: Path
) -> None:
    define_connection("acc_default", **acc_connection(box, tmp_path, password="wrong-secret-123"))
    ok, message = AccHook().test_connection()
    assert not ok
    assert message.startswith("ACC sign-in failed: ") and "401" in message
    assert "wrong-secret-123" not in message


def test_an_empty_refresh_token_fails_the_test_before_any_call(
    box: sandbox.Sandbox, define_connection: DefineConnection, tmp_path: Path
) -> None:
    fields = acc_connection(box, tmp_path)
    fields["extra"]["refresh_token"] = ""
    define_connection("acc_default", **fields)
    ok, message = AccHook().test_connection()
    assert (ok, message) == (
        False,
        "extra.refresh_token is empty: complete the three-legged sign-in and paste the refresh token",
    )


def test_a_missing_connection_is_a_config_error_and_a_failed_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_ACC_NOWHERE", raising=False)
    with pytest.raises(ConfigError, match=r"connection 'acc_nowhere' is not defined: set AIRFLOW_CONN_ACC_NOWHERE"):
        AccHook("acc_nowhere").get_conn()
    ok, message = AccHook("acc_nowhere").test_connection()
    assert not ok and "AIRFLOW_CONN_ACC_NOWHERE" in message


def test_a_host_we_would_not_send_a_token_to_is_a_config_error_naming_the_connection(
    define_connection: DefineConnection, tmp_path: Path
) -> None:
    define_connection(
        "acc_default",
        conn_type="acc",
        host="http://acc.example.com",
        login="i",
        password="s",
        extra={"refresh_token": "r", "token_store": str(tmp_path)},
    )
    with pytest.raises(ConfigError, match=r"^connection 'acc_default': ACC host: plain http is only allowed"):
        AccHook().get_conn()
    ok, message = AccHook().test_connection()
    assert not ok and "plain http is only allowed" in message


def test_the_client_gets_the_connection_and_the_hooks_policy(
    define_connection: DefineConnection, masked: list[str], tmp_path: Path
) -> None:
    from acc_buildpass.clients.retry import RetryPolicy

    define_connection(
        "acc_site",
        conn_type="acc",
        host="acc.example.com",  # a bare host name: https
        login="client-1",
        password="secret-1",
        extra={"refresh_token": "refresh-1", "token_store": str(tmp_path)},
    )
    policy = RetryPolicy(attempts=2)
    hook = AccHook("acc_site", policy=policy)
    with hook.get_conn() as client:
        assert isinstance(client, AccClient)
        assert client.base_url == "https://acc.example.com"
        assert client.policy is policy
    assert hook.connection.token_store == str(tmp_path)
    assert set(masked) == {"secret-1", "refresh-1"}


def test_no_host_means_autodesks_api(define_connection: DefineConnection, masked: list[str]) -> None:
    define_connection("acc_default", conn_type="acc", login="i", password="s", extra={"refresh_token": "r"})
    assert AccHook().connection.base_url == ACC_BASE_URL == "https://developer.api.autodesk.com"
