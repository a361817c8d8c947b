"""What the hooks share: a connection that must exist, the API hooks' common frame, and where
their token stores live."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from acc_buildpass.clients.retry import RetryPolicy
from acc_buildpass.errors import AccBuildPassError, ConfigError


def fernet_key() -> str | None:
    """Airflow's ``[core] fernet_key``, which encrypts the token stores (None: they stay plain, owner-only)."""
    try:
        from airflow.configuration import conf

        return conf.get("core", "fernet_key", fallback="") or None
    except Exception:  # no Airflow configuration: the store stays plain, owner-only
        return None


def token_store_directory(extra: dict[str, Any]) -> str:
    """Where a connection's tokens are kept: ``extra.token_store``, else ``$AIRFLOW_HOME/acc_buildpass``."""
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    return str(extra.get("token_store") or os.path.join(home, "acc_buildpass"))


def _not_defined(exc: BaseException) -> bool:
    return type(exc).__name__ == "AirflowNotFoundException" or "isn't defined" in str(exc)


def require_connection(conn_id: str) -> Any:
    """The connection, from wherever Airflow looks (environment, secrets backend, metadata DB).

    :raises ConfigError: the connection is not defined anywhere Airflow looks
    """
    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:
        if _not_defined(exc):
            raise ConfigError(
                f"connection {conn_id!r} is not defined: set AIRFLOW_CONN_{conn_id.upper()} or add it "
                "(airflow connections add, the UI, or a secrets backend; see README, 'Configuration')"
            ) from None
        raise


class ApiHook(BaseHook):
    """An API's hook: a retry policy for its client, the connection read with its secret masked,
    and ``test_connection`` that returns ``(ok, message)`` and never raises.

    A subclass names its API (``api``) and signs in with :meth:`_sign_in`.
    """

    api = "API"

    def __init__(self, conn_id: str, policy: RetryPolicy | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.policy = policy or RetryPolicy()

    def _connection(self) -> Any:
        """:raises ConfigError: the connection is not defined"""
        conn = require_connection(self.conn_id)
        if conn.password:
            mask_secret(conn.password)
        return conn

    def _unusable(self, exc: ValueError) -> ConfigError:
        """A connection field the client refused (its host, say), as what to fix."""
        return ConfigError(f"connection {self.conn_id!r}: {exc}")

    def _sign_in(self) -> tuple[bool, str]:
        """Prove the connection's credentials without reading or writing any data: (ok, message).

        :raises AccBuildPassError: the API or the connection refused
        """
        raise NotImplementedError

    def test_connection(self) -> tuple[bool, str]:
        try:
            return self._sign_in()
        except (AccBuildPassError, ValueError) as exc:
            return False, f"{self.api} sign-in failed: {exc}"
        except Exception as exc:  # its text may hold what we cannot vouch for: its type only
            return False, f"{self.api} sign-in failed: {type(exc).__name__}"
