"""Airflow hook for Autodesk Construction Cloud (connection type ``acc``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from airflow.sdk.log import mask_secret

from acc_buildpass.clients import endpoints, retry
from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.http import api_base_url
from acc_buildpass.clients.tokens import FileTokenStore
from acc_buildpass.hooks import forms
from acc_buildpass.hooks.connections import ApiHook, fernet_key, token_store_directory

# The Test button waits for the answer: one attempt, as a person can press it again.
TEST_POLICY = retry.RetryPolicy(attempts=1)


@dataclass(frozen=True)
class AccConnection:
    """What the connection says, read once per hook (every secret in it already masked)."""

    base_url: str
    client_id: str
    client_secret: str
    refresh_token: str
    token_store: str


class AccHook(ApiHook):
    """ACC Photos API with a three-legged refresh token.

    Connection: ``host`` (default Autodesk's API), ``login`` client id, ``password`` client
    secret, ``extra.refresh_token`` the first refresh token, optional ``extra.token_store``
    (directory where rotated tokens are kept; default ``$AIRFLOW_HOME/acc_buildpass``).
    """

    conn_name_attr = "acc_conn_id"
    default_conn_name = "acc_default"
    conn_type = forms.ACC.conn_type
    hook_name = forms.ACC.hook_name
    form = forms.ACC  # how the UI draws the connection (see provider.get_provider_info)
    api = "ACC"

    def __init__(self, acc_conn_id: str = default_conn_name, policy: retry.RetryPolicy | None = None) -> None:
        super().__init__(acc_conn_id, policy)
        self.acc_conn_id = acc_conn_id

    @cached_property
    def connection(self) -> AccConnection:
        """:raises ConfigError: the connection is not defined"""
        conn = self._connection()
        extra = conn.extra_dejson
        refresh_token = extra.get("refresh_token") or ""
        if refresh_token:
            mask_secret(refresh_token)
        return AccConnection(
            base_url=api_base_url(conn.host, endpoints.ACC_BASE_URL),
            client_id=conn.login or "",
            client_secret=conn.password or "",
            refresh_token=refresh_token,
            token_store=token_store_directory(extra),
        )

    def get_conn(self, policy: retry.RetryPolicy | None = None) -> AccClient:
        """The client, its tokens registered with the secrets masker as they arrive.

        :param policy: instead of the hook's own
        :raises ConfigError: the connection is not defined, or its host (or the token store's
            key) cannot be used
        """
        c = self.connection
        try:
            store = FileTokenStore(c.token_store, key=f"{c.base_url}|{c.client_id}", fernet_key=fernet_key())
            return AccClient(
                c.base_url,
                c.client_id,
                c.client_secret,
                c.refresh_token,
                store,
                policy=policy or self.policy,
                on_secret=mask_secret,
            )
        except ValueError as exc:
            raise self._unusable(exc) from None

    def _sign_in(self) -> tuple[bool, str]:
        """Check the app's client id and secret with a two-legged token (the client's own check).

        The refresh token is single use and is left alone: spending it here could strand
        the workers that hold the rotated chain.
        """
        if not self.connection.refresh_token:
            return False, "extra.refresh_token is empty: complete the three-legged sign-in and paste the refresh token"
        with self.get_conn(policy=TEST_POLICY) as client:
            client.check_client()
        return True, "ACC accepted the client id and secret (the refresh token is not spent by a test)"
