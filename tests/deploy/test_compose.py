"""docker-compose.yaml agrees with the repo (no Docker engine here: checked statically)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yaml").read_text())
ONE_SHOTS = {"airflow-init", "seaweedfs-bucket", "sandbox-setup"}


def test_every_long_running_service_has_a_healthcheck() -> None:
    services = COMPOSE["services"]
    assert {
        "postgres",
        "redis",
        "seaweedfs",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
        "airflow-init",
        "sandbox",
    } <= set(services)
    missing = [name for name, s in services.items() if name not in ONE_SHOTS and "healthcheck" not in s]
    assert missing == []
    for name in ONE_SHOTS:
        assert services[name]["restart"] == "no"


def test_every_variable_is_listed_in_env_example() -> None:
    text = (ROOT / "docker-compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    listed = set(re.findall(r"^([A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used - listed == set(), "add these to .env.example"


def test_referenced_files_and_modules_exist() -> None:
    assert (ROOT / "Dockerfile").is_file()
    services = COMPOSE["services"]
    assert services["sandbox-setup"]["entrypoint"][-1] == "sandbox.compose_setup"
    assert importlib.util.find_spec("sandbox.compose_setup") is not None
    assert importlib.util.find_spec("sandbox.__main__") is not None
    dockerfile = (ROOT / "Dockerfile").read_text()
    for path in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", dockerfile, re.M):
        for part in path.split():
            assert (ROOT / part).exists(), part
    assert "pip install" in dockerfile and "pip install" not in str(services["airflow-worker"].get("command"))
