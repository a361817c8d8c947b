"""The connection types as Airflow's UI draws them: type, name, and the form's fields.

Written once, here, for two readers: each hook class takes its ``conn_type``, ``hook_name`` and
``form`` from its record, and ``provider.get_provider_info`` lists the records. No Airflow import:
Airflow calls ``get_provider_info`` while it is itself being imported, before a hook module could be.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from acc_buildpass.clients import endpoints


@dataclass(frozen=True)
class ConnectionForm:
    """One connection type.

    :param hook_class_name: the hook class that reads connections of this type
    :param ui_field_behaviour: which standard fields are hidden, relabelled, given a placeholder
    :param conn_fields: the keys of ``extra`` drawn as fields of their own
    """

    conn_type: str
    hook_name: str
    hook_class_name: str
    ui_field_behaviour: dict[str, Any]
    conn_fields: dict[str, Any]

    def provider_entry(self) -> dict[str, Any]:
        """Its ``connection-types`` entry (fresh dicts: Airflow may amend what it is given)."""
        return {
            "hook-class-name": self.hook_class_name,
            "hook-name": self.hook_name,
            "connection-type": self.conn_type,
            "ui-field-behaviour": copy.deepcopy(self.ui_field_behaviour),
            "conn-fields": copy.deepcopy(self.conn_fields),
        }


def api_field_behaviour(*, host: str, login: str, extra: dict[str, Any]) -> dict[str, Any]:
    """The form of an OAuth client of an HTTP API: the host is its base URL, login and password
    its client id and secret; schema and port mean nothing to it.

    :param extra: an example of the connection's ``extra``, shown as its placeholder
    """
    return {
        "hidden-fields": ["schema", "port"],
        "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
        "placeholders": {"host": host, "login": login, "extra": json.dumps(extra, indent=2)},
    }


def extra_field(label: str, description: str, **schema: Any) -> dict[str, Any]:
    """One optional key of ``extra``, drawn as its own field (``format="password"`` hides it)."""
    return {"label": label, "description": description, "schema": {"type": ["string", "null"], **schema}}


ACC = ConnectionForm(
    conn_type="acc",
    hook_name="Autodesk Construction Cloud",
    hook_class_name="acc_buildpass.hooks.acc.AccHook",
    ui_field_behaviour=api_field_behaviour(
        host=endpoints.ACC_BASE_URL,
        login="APS app client id",
        extra={"refresh_token": "<from the three-legged sign-in>", "token_store": "/opt/airflow/acc_buildpass"},
    ),
    conn_fields={
        "refresh_token": extra_field(
            "Refresh token",
            "First refresh token of the three-legged sign-in; rotated tokens are kept in the token store",
            format="password",
        ),
        "token_store": extra_field(
            "Token store directory", "Where rotated refresh tokens are kept (shared by all workers of a host)"
        ),
    },
)

BUILDPASS = ConnectionForm(
    conn_type="buildpass",
    hook_name="BuildPass",
    hook_class_name="acc_buildpass.hooks.buildpass.BuildPassHook",
    ui_field_behaviour=api_field_behaviour(
        host=endpoints.BUILDPASS_BASE_URL, login="OAuth client id", extra={"region_id": "au1"}
    ),
    conn_fields={
        "region_id": extra_field("Region", "X-BuildPass-Region-Id: au1 (default) or us1", enum=["au1", "us1", None]),
    },
)

FORMS = (ACC, BUILDPASS)
