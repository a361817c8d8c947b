"""The provider metadata Airflow reads through the ``apache_airflow_provider`` entry point: built
from the hook classes, it must stay what the UI was given before (a literal copy below)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import import_module
from importlib.metadata import entry_points

from acc_buildpass import __version__
from acc_buildpass.provider import get_provider_info

# What get_provider_info() returned when it was written out by hand (issue 11): the connection
# forms in the UI must not change.
BEFORE = {
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


def test_the_provider_info_is_what_the_ui_was_given_before() -> None:
    info = get_provider_info()
    assert info == BEFORE
    assert json.dumps(info) == json.dumps(BEFORE)  # the same key order too


def test_each_connection_type_is_what_its_hook_class_says() -> None:
    entries = get_provider_info()["connection-types"]
    assert [e["connection-type"] for e in entries] == ["acc", "buildpass"]
    for entry in entries:
        module, _, name = entry["hook-class-name"].rpartition(".")
        hook = getattr(import_module(module), name)
        assert (hook.conn_type, hook.hook_name) == (entry["connection-type"], entry["hook-name"])
        assert hook.form.provider_entry() == entry  # the form the hook class holds is the one listed


def test_reading_the_provider_info_imports_no_airflow() -> None:
    """Airflow calls it while importing itself: importing a hook module then would be a cycle."""
    code = (
        "import sys; from acc_buildpass.provider import get_provider_info; get_provider_info(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'airflow' or m.startswith('acc_buildpass.hooks.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['acc_buildpass.hooks.forms']"


def test_a_caller_cannot_change_the_next_answer() -> None:
    """Airflow keeps and may amend what it is given: each call returns fresh dicts."""
    first = get_provider_info()
    first["connection-types"][0]["ui-field-behaviour"]["hidden-fields"].append("host")
    first["connection-types"][1]["conn-fields"].clear()
    assert get_provider_info() == BEFORE


# -- as Airflow finds it (moved from tests/dags/test_dag.py) --------------------------------------


def test_connection_types_are_registered_for_the_ui() -> None:
    (provider,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("acc_buildpass")]
    info = provider.load()()
    types = {c["connection-type"]: c for c in info["connection-types"]}
    assert set(types) == {"acc", "buildpass"}
    assert types["acc"]["ui-field-behaviour"]["relabeling"]["password"] == "Client secret"
    assert types["acc"]["conn-fields"]["refresh_token"]["schema"]["format"] == "password"
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        hook = getattr(__import__(module, fromlist=[name]), name)
        assert hook.conn_type == conn["connection-type"]


def test_airflow_lists_our_connection_types() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    assert "acc-buildpass" in manager.providers
    assert manager.field_behaviours["acc"]["relabeling"]["login"] == "Client ID"
