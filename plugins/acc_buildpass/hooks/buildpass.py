"""Airflow hook for BuildPass (connection type ``buildpass``)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from acc_buildpass.clients import retry
from acc_buildpass.clients.buildpass import DEFAULT_BASE_URL, BuildPassClient
from acc_buildpass.errors import AccBuildPassError


class BuildPassHook(BaseHook):
    """BuildPass API with OAuth client credentials.

    Connection: ``host`` (default ``https://api.buildpass.global``), ``login`` client id,
    ``password`` client secret, optional ``extra.region_id`` (au1 or us1).
    """

    conn_name_attr = "buildpass_conn_id"
    default_conn_name = "buildpass_default"
    conn_type = "buildpass"
    hook_name = "BuildPass"

    def __init__(self, buildpass_conn_id: str = default_conn_name, policy: retry.RetryPolicy | None = None) -> None:
        super().__init__()
        self.buildpass_conn_id = buildpass_conn_id
        self.policy = policy or retry.RetryPolicy()

    def get_conn(self) -> BuildPassClient:
        conn = self.get_connection(self.buildpass_conn_id)
        extra: dict[str, Any] = conn.extra_dejson
        if conn.password:
            mask_secret(conn.password)
        host = conn.host or DEFAULT_BASE_URL
        if "://" not in host:
            host = f"https://{host}"
        return BuildPassClient(
            host,
            conn.login or "",
            conn.password or "",
            region_id=extra.get("region_id") or None,
            policy=self.policy,
            on_secret=mask_secret,
        )

    def test_connection(self) -> tuple[bool, str]:
        """Sign in with the client credentials; reads nothing, writes nothing."""
        try:
            self.get_conn().sign_in()
            return True, "BuildPass accepted the client credentials"
        except (AccBuildPassError, ValueError) as exc:
            return False, f"BuildPass sign-in failed: {exc}"
        except Exception as exc:
            return False, f"BuildPass sign-in failed: {type(exc).__name__}"
