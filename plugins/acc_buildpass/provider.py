"""Provider metadata: makes the ``acc`` and ``buildpass`` connection types show in the UI.

Airflow reads it through the ``apache_airflow_provider`` entry point, while it is itself being
imported: so it lists the forms the hook classes take their attributes from
(:mod:`acc_buildpass.hooks.forms`), not the hook classes, which import Airflow.
"""

from __future__ import annotations

from typing import Any

from acc_buildpass import __version__
from acc_buildpass.hooks.forms import FORMS


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "acc-buildpass",
        "name": "ACC to BuildPass",
        "description": "Copy Autodesk Construction Cloud photos into BuildPass photo galleries.",
        "versions": [__version__],
        "connection-types": [form.provider_entry() for form in FORMS],
    }
