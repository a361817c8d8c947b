"""Provider metadata: makes the ``acc`` and ``buildpass`` connection types show in the UI."""

from __future__ import annotations

import json
from typing import Any

from acc_buildpass import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "acc-buildpass",
        "name": "ACC to BuildPass",
        "description": "Copy Autodesk Construction Cloud photos into BuildPass photo galleries.",
        "versions": [__version__],
        "connection-types": [
            {
                "hook-class-name": "acc_buildpass.hooks.acc.AccHook",
                "hook-name": "Autodesk Construction Cloud",
                "connection-type": "acc",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "host": "https://developer.api.autodesk.com",
                        "login": "APS app client id",
                        "extra": json.dumps(
                            {
                                "refresh_token": "<from the three-legged sign-in>",
                                "token_store": "/opt/airflow/acc_buildpass",
                            },
                            indent=2,
                        ),
                    },
                },
                "conn-fields": {
                    "refresh_token": {
                        "label": "Refresh token",
                        "description": "First refresh token of the three-legged sign-in; "
                        "rotated tokens are kept in the token store",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "token_store": {
                        "label": "Token store directory",
                        "description": "Where rotated refresh tokens are kept (shared by all workers of a host)",
                        "schema": {"type": ["string", "null"]},
                    },
                },
            },
            {
                "hook-class-name": "acc_buildpass.hooks.buildpass.BuildPassHook",
                "hook-name": "BuildPass",
                "connection-type": "buildpass",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {"host": "API base URL", "login": "Client ID", "password": "Client secret"},
                    "placeholders": {
                        "host": "https://api.buildpass.global",
                        "login": "OAuth client id",
                        "extra": json.dumps({"region_id": "au1"}, indent=2),
                    },
                },
                "conn-fields": {
                    "region_id": {
                        "label": "Region",
                        "description": "X-BuildPass-Region-Id: au1 (default) or us1",
                        "schema": {"type": ["string", "null"], "enum": ["au1", "us1", None]},
                    },
                },
            },
        ],
    }
