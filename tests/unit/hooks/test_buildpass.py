"""BuildPassHook: the connection read once and masked, the client it builds, and a Test button
that signs in against the real BuildPass emulator and does nothing else."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest
import requests
import sandbox
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.clients.endpoints import BUILDPASS_BASE_URL
from acc_buildpass.clients.retry import RetryPolicy
from acc_buildpass.errors import ConfigError
from acc_buildpass.hooks import connections
from acc_buildpass.hooks.buildpass import BuildPassHook
from cryptography.fernet import Fernet
from sandbox.buildpass import DEFAULT_BUILDER, DEFAULT_CLIENT, DEFAULT_PROJECT

from tests.unit.hooks.conftest import DefineConnection

QUICK = RetryPolicy(attempts=1)


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the hook registers with Airflow's secrets masker (the client secret; tokens are the
    client's, registered through ``on_secret``)."""
    seen: list[str] = []
    monkeypatch.setattr(connections, "mask_secret", seen.append)
    return seen


def buildpass_connection(box: sandbox.Sandbox, **overrides: Any) -> dict[str, Any]:
    fields = {"conn_type": "buildpass", "host": box.buildpass_url, "login": DEFAULT_CLIENT[0]}
    return {**fields, "password": DEFAULT_CLIENT[1], "extra": {"region_id": "au1"}, **overrides}


def requests_seen(box: sandbox.Sandbox) -> dict[str, int]:
    seen: dict[str, int] = requests.get(box.buildpass_url + "/_admin/stats", timeout=5).json()["requests"]
    return seen


def test_the_test_button_signs_in_and_touches_nothing_else(
    box: sandbox.Sandbox, define_connection: DefineConnection, masked: list[str], tmp_path: Path
) -> None:
    store = tmp_path / "tokens"
    define_connection(
        "buildpass_default", **buildpass_connection(box, extra={"region_id": "au1", "token_store": str(store)})
    )
    assert requests.post(box.buildpass_url + "/_admin/stats/reset", timeout=5).status_code == 200
    assert BuildPassHook(policy=QUICK).test_connection() == (True, "BuildPass accepted the client credentials")
    assert requests_seen(box) == {"token": 1}
    assert masked == [DEFAULT_CLIENT[1]]
    assert not store.exists()  # the token store is neither read nor written by a test


def test_a_refused_secret_is_a_failed_test_that_does_not_quote_it(
    box: sandbox.Sandbox, define_connection: DefineConnection
) -> None:
    define_connection("buildpass_default", **buildpass_connection(box, password="wrong-secret-456"))
    ok, message = BuildPassHook(policy=QUICK).test_connection()
    assert not ok
    assert message.startswith("BuildPass sign-in failed: ") and "401" in message
    assert "wrong-secret-456" not in message


def test_a_missing_connection_is_a_config_error_and_a_failed_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_BP_NOWHERE", raising=False)
    with pytest.raises(ConfigError, match=r"connection 'bp_nowhere' is not defined: set AIRFLOW_CONN_BP_NOWHERE"):
        BuildPassHook("bp_nowhere").get_conn()
    ok, message = BuildPassHook("bp_nowhere").test_connection()
    assert not ok and message.startswith("BuildPass sign-in failed: connection 'bp_nowhere' is not defined")


def test_a_host_we_would_not_send_the_secret_to_is_a_config_error_naming_the_connection(
    define_connection: DefineConnection,
) -> None:
    define_connection("buildpass_default", conn_type="buildpass", host="ftp://bp.example.com", login="i", password="s")
    with pytest.raises(ConfigError, match=r"^connection 'buildpass_default': BuildPass host: 'ftp://"):
        BuildPassHook().get_conn()


def test_the_client_gets_the_connection_and_the_hooks_policy(
    define_connection: DefineConnection, masked: list[str]
) -> None:
    define_connection(
        "bp_site", conn_type="buildpass", host="bp.example.com", login="c", password="s", extra={"region_id": "us1"}
    )
    policy = RetryPolicy(attempts=2)
    with BuildPassHook("bp_site", policy=policy).get_conn() as client:
        assert isinstance(client, BuildPassClient)
        assert (client.base_url, client.region_id, client.policy) == ("https://bp.example.com", "us1", policy)
    assert masked == ["s"]


def test_no_host_means_buildpass_api_and_no_region_header(define_connection: DefineConnection) -> None:
    define_connection("buildpass_default", conn_type="buildpass", login="c", password="s")
    hook = BuildPassHook()
    assert hook.connection.base_url == BUILDPASS_BASE_URL == "https://api.buildpass.global"
    assert hook.connection.region_id is None


# -- the token store -------------------------------------------------------------------------------


def list_folders(hook: BuildPassHook) -> None:
    with hook.get_conn() as client:
        assert client.list_folders(DEFAULT_BUILDER, DEFAULT_PROJECT[0]) == []


def test_tasks_share_one_token_through_the_connections_token_store(
    box: sandbox.Sandbox, define_connection: DefineConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY", raising=False)
    define_connection("bp_tasks", **buildpass_connection(box, extra={"region_id": "au1", "token_store": str(tmp_path)}))
    assert requests.post(box.buildpass_url + "/_admin/stats/reset", timeout=5).status_code == 200
    for _ in range(3):  # three tasks, each building its client from the connection
        list_folders(BuildPassHook("bp_tasks", policy=QUICK))
    assert requests_seen(box) == {"token": 1, "folders": 3}
    (path,) = tmp_path.glob("buildpass-token-*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_bytes())["refresh_token"] == ""  # no Fernet key configured: plain, owner-only


def test_the_token_store_defaults_to_airflow_home_and_is_encrypted_with_airflows_fernet_key(
    box: sandbox.Sandbox, define_connection: DefineConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", key)
    define_connection("bp_home", **buildpass_connection(box))
    hook = BuildPassHook("bp_home", policy=QUICK)
    assert hook.connection.token_store == str(tmp_path / "acc_buildpass")
    list_folders(hook)
    (path,) = (tmp_path / "acc_buildpass").glob("buildpass-token-*.json")
    state = json.loads(Fernet(key.encode()).decrypt(path.read_bytes()))
    assert state["access_token"].encode() not in path.read_bytes()
    assert DEFAULT_CLIENT[1] not in json.dumps(state)
