"""``docker compose --profile sandbox``: point Airflow at the emulators and seed demo data.

Runs once, after ``airflow-init``: seeds two days of ACC photos, asks the ACC emulator for a
refresh token (what a user's three-legged sign-in gives), and writes the connections
``acc_default`` and ``buildpass_default`` and the Variable ``acc_buildpass_config``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import requests

PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"


def airflow(*args: str) -> None:
    subprocess.run(["airflow", *args], check=True)


def main() -> int:
    acc, bp = os.environ["SANDBOX_ACC_URL"], os.environ["SANDBOX_BUILDPASS_URL"]
    seeded = requests.post(
        f"{acc}/_admin/seed",
        json={
            "project_id": PROJECT,
            "count": 200,
            "start": "2026-03-02T00:00:00",
            "end": "2026-03-04T00:00:00",
            "deleted": 4,
            "videos": 3,
        },
        timeout=60,
    )
    seeded.raise_for_status()
    token = requests.post(f"{acc}/_admin/refresh-token", json={"client_id": "acc-demo-client"}, timeout=10)
    token.raise_for_status()
    for conn_id in ("acc_default", "buildpass_default"):
        subprocess.run(["airflow", "connections", "delete", conn_id], check=False, capture_output=True)
    airflow(
        "connections",
        "add",
        "acc_default",
        "--conn-type",
        "acc",
        "--conn-host",
        acc,
        "--conn-login",
        "acc-demo-client",
        "--conn-password",
        "acc-demo-secret",
        "--conn-extra",
        json.dumps({"refresh_token": token.json()["refresh_token"]}),
    )
    airflow(
        "connections",
        "add",
        "buildpass_default",
        "--conn-type",
        "buildpass",
        "--conn-host",
        bp,
        "--conn-login",
        "bp-demo-client",
        "--conn-password",
        "bp-demo-secret",
    )
    config = {
        "staging_bucket": os.environ.get("STAGING_BUCKET", "acc-buildpass-staging"),
        "staging_prefix": "acc-photos",
        "projects": [
            {
                "acc_project_id": PROJECT,
                "builder_id": "buil_demo",
                "buildpass_project_id": "proj_demo",
                "buildpass_folder_id": None,
            }
        ],
    }
    airflow("variables", "set", "acc_buildpass_config", json.dumps(config))
    print(f"sandbox ready: {len(seeded.json()['ids'])} ACC photos from 2026-03-02 to 2026-03-04; trigger with")
    print('  {"window_start": "2026-03-02T00:00:00Z", "window_end": "2026-03-04T00:00:00Z"}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
