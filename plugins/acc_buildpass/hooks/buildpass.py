"""Airflow hook for BuildPass (connection type ``buildpass``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from airflow.sdk.log import mask_secret

from acc_buildpass.clients import endpoints, retry, tokens
from acc_buildpass.clients.buildpass import BuildPassClient, token_store_key
from acc_buildpass.clients.http import api_base_url
from acc_buildpass.hooks import forms
from acc_buildpass.hooks.connections import ApiHook, fernet_key, token_store_directory


@dataclass(frozen=True)
class BuildPassConnection:
    """What the connection says, read once per hook (the secret in it already masked)."""

    base_url: str
    client_id: str
    client_secret: str
    region_id: str | None
    token_store: str


class BuildPassHook(ApiHook):
    """BuildPass API with OAuth client credentials.

    Connection: ``host`` (default ``https://api.buildpass.global``), ``login`` client id,
    ``password`` client secret, optional ``extra.region_id`` (au1 or us1), optional
    ``extra.token_store`` (directory where the access token is shared by the task processes;
    default ``$AIRFLOW_HOME/acc_buildpass``, as ACC's).
    """

    conn_name_attr = "buildpass_conn_id"
    default_conn_name = "buildpass_default"
    conn_type = forms.BUILDPASS.conn_type
    hook_name = forms.BUILDPASS.hook_name
    form = forms.BUILDPASS  # how the UI draws the connection (see provider.get_provider_info)
    api = "BuildPass"

    def __init__(self, buildpass_conn_id: str = default_conn_name, policy: retry.RetryPolicy | None = None) -> None:
        super().__init__(buildpass_conn_id, policy)
        self.buildpass_conn_id = buildpass_conn_id

    @cached_property
    def connection(self) -> BuildPassConnection:
        """:raises ConfigError: the connection is not defined"""
        conn = self._connection()
        extra = conn.extra_dejson
        return BuildPassConnection(
            base_url=api_base_url(conn.host, endpoints.BUILDPASS_BASE_URL),
            client_id=conn.login or "",
            client_secret=conn.password or "",
            region_id=extra.get("region_id") or None,
            token_store=token_store_directory(extra),
        )

    def get_conn(self) -> BuildPassClient:
        """The client, its tokens registered with the secrets masker as they arrive and shared with
        the other task processes through the token store.

        :raises ConfigError: the connection is not defined, or its host (or the token store's
            key) cannot be used
        """
        c = self.connection
        try:
            store = tokens.FileTokenStore(
                c.token_store,
                key=token_store_key(c.base_url, c.client_id, c.client_secret),
                fernet_key=fernet_key(),
                kind=tokens.BUILDPASS,
            )
            return BuildPassClient(
                c.base_url,
                c.client_id,
                c.client_secret,
                region_id=c.region_id,
                token_store=store,
                policy=self.policy,
                on_secret=mask_secret,
            )
        except ValueError as exc:
            raise self._unusable(exc) from None

    def _sign_in(self) -> tuple[bool, str]:
        """Sign in with the client credentials (the client's own check); reads nothing, writes nothing
        (the token store included)."""
        with self.get_conn() as client:
            client.sign_in()
        return True, "BuildPass accepted the client credentials"
