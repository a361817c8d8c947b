"""docker-compose.yaml agrees with the repo (no Docker engine here: checked statically)."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
from pathlib import Path

import pytest
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


def test_validates_against_the_compose_specification_schema() -> None:
    path = Path(os.environ.get("COMPOSE_SPEC_SCHEMA", ROOT / ".cache" / "compose-spec.json"))
    if not path.is_file():
        pytest.skip("the Compose Specification schema is fetched by `make test` (COMPOSE_SPEC_SCHEMA)")
    import jsonschema

    schema = json.loads(path.read_text())
    schema.pop("$schema", None)  # draft 2019-09 by name; its keywords validate the same under the default draft
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(COMPOSE)] == []
    broken = copy.deepcopy(COMPOSE)
    broken["services"]["redis"]["healthcheck"]["retries"] = "many"
    broken["services"]["postgres"]["restartt"] = "always"
    assert len(list(validator.iter_errors(broken))) >= 2, "the schema must catch what it is here to catch"


def test_ports_and_services_agree_with_the_code() -> None:
    services = COMPOSE["services"]
    common = services["airflow-scheduler"]["environment"]
    # The execution API the workers call is the api-server service, on the port it listens on.
    assert common["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
    assert any(p.endswith(":8080") for p in services["airflow-apiserver"]["ports"])
    # The sandbox emulators listen where sandbox-setup and the insecure-host list look for them.
    entry = services["sandbox"]["entrypoint"]
    acc_port, bp_port = entry[entry.index("--acc-port") + 1], entry[entry.index("--buildpass-port") + 1]
    setup = services["sandbox-setup"]["environment"]
    assert setup["SANDBOX_ACC_URL"] == f"http://sandbox:{acc_port}"
    assert setup["SANDBOX_BUILDPASS_URL"] == f"http://sandbox:{bp_port}"
    assert "sandbox" in common["ACC_BUILDPASS_INSECURE_HTTP_HOSTS"]
    # The pool the DAG uses is the one the init service creates.
    assert common["ACC_BUILDPASS_POOL"] in services["airflow-init"]["command"][1]
    # The S3 endpoint of the staging connection is the seaweedfs service's S3 port.
    assert "http://seaweedfs:8333" in services["airflow-init"]["command"][1]
    assert "-s3.port=8333" in services["seaweedfs"]["command"][0]
