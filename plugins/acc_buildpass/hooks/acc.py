"""Airflow hook for Autodesk Construction Cloud (connection type ``acc``)."""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from acc_buildpass.clients import retry
from acc_buildpass.clients.acc import DEFAULT_BASE_URL, TOKEN_PATH, AccClient
from acc_buildpass.clients.http import check_base_url, json_body, new_session, request
from acc_buildpass.clients.tokens import FileTokenStore
from acc_buildpass.errors import AccBuildPassError


def _fernet_key() -> str | None:
    try:
        from airflow.configuration import conf

        return conf.get("core", "fernet_key", fallback="") or None
    except Exception:  # no Airflow configuration: the store stays plain, owner-only
        return None


class AccHook(BaseHook):
    """ACC Photos API with a three-legged refresh token.

    Connection: ``host`` (default Autodesk's API), ``login`` client id, ``password`` client
    secret, ``extra.refresh_token`` the first refresh token, optional ``extra.token_store``
    (directory where rotated tokens are kept; default ``$AIRFLOW_HOME/acc_buildpass``).
    """

    conn_name_attr = "acc_conn_id"
    default_conn_name = "acc_default"
    conn_type = "acc"
    hook_name = "Autodesk Construction Cloud"

    def __init__(self, acc_conn_id: str = default_conn_name, policy: retry.RetryPolicy | None = None) -> None:
        super().__init__()
        self.acc_conn_id = acc_conn_id
        self.policy = policy or retry.RetryPolicy()

    @cached_property
    def _settings(self) -> dict[str, Any]:
        conn = self.get_connection(self.acc_conn_id)
        extra = conn.extra_dejson
        refresh_token = extra.get("refresh_token") or ""
        for secret in (conn.password, refresh_token):
            if secret:
                mask_secret(secret)
        home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
        host = conn.host or DEFAULT_BASE_URL
        if "://" not in host:
            host = f"https://{host}"
        return {
            "base_url": host,
            "client_id": conn.login or "",
            "client_secret": conn.password or "",
            "refresh_token": refresh_token,
            "token_store": extra.get("token_store") or os.path.join(home, "acc_buildpass"),
        }

    def get_conn(self) -> AccClient:
        s = self._settings
        store = FileTokenStore(s["token_store"], key=f"{s['base_url']}|{s['client_id']}", fernet_key=_fernet_key())
        return AccClient(
            s["base_url"],
            s["client_id"],
            s["client_secret"],
            s["refresh_token"],
            store,
            policy=self.policy,
            on_secret=mask_secret,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Check the app's client id and secret with a two-legged token.

        The refresh token is single use and is left alone: spending it here could strand
        the workers that hold the rotated chain.
        """
        try:
            s = self._settings
            if not s["refresh_token"]:
                return (
                    False,
                    "extra.refresh_token is empty: complete the three-legged sign-in and paste the refresh token",
                )
            base = check_base_url(s["base_url"], name="ACC host")
            response = request(
                new_session(1),
                "POST",
                base + TOKEN_PATH,
                auth=(s["client_id"], s["client_secret"]),
                data={"grant_type": "client_credentials", "scope": "data:read"},
            )
            token = json_body(response).get("access_token")
            if token:
                mask_secret(token)
            return True, "ACC accepted the client id and secret (the refresh token is not spent by a test)"
        except (AccBuildPassError, ValueError) as exc:
            return False, f"ACC sign-in failed: {exc}"
        except Exception as exc:
            return False, f"ACC sign-in failed: {type(exc).__name__}"
