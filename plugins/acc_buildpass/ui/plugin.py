"""The Airflow plugin (entry point ``airflow.plugins``): the report page and its tab on each DAG run.

Every Airflow process loads plugins, task processes included, so this module imports nothing
heavy: the report app is imported by the api-server on its first request.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/acc-buildpass"


class _ReportApp:
    """ASGI app that imports :mod:`acc_buildpass.ui.report_view` when first called."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from acc_buildpass.ui.report_view import app

            self._app = app
        await self._app(scope, receive, send)


class AccBuildPassPlugin(AirflowPlugin):
    name = "acc_buildpass"
    fastapi_apps = [{"app": _ReportApp(), "url_prefix": URL_PREFIX, "name": "ACC to BuildPass reports"}]
    external_views = [
        {
            "name": "Copy report",
            # Relative to Airflow's base URL; the UI fills in the run it is shown on.
            "href": URL_PREFIX.lstrip("/") + "/report/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "acc-buildpass-report",
        }
    ]
