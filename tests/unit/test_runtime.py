"""runtime.py, the one Airflow-aware factory: the Variable parsed once (errors say what to fix),
connections required before a client or a store is made, the S3 profile each context gets, and
the check command's findings when nothing is configured."""

from __future__ import annotations

import json
from typing import Any

import pytest
from acc_buildpass import runtime
from acc_buildpass.clients import http
from acc_buildpass.errors import ConfigError

PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
VARIABLE: dict[str, Any] = {
    "staging_bucket": "acc-buildpass-staging",
    "projects": [{"acc_project_id": PROJECT, "builder_id": "buil_x", "buildpass_project_id": "proj_y"}],
}
CONNECTIONS: dict[str, dict[str, Any]] = {
    "AIRFLOW_CONN_ACC_DEFAULT": {
        "conn_type": "acc",
        "host": "https://acc.example.com",
        "login": "c",
        "password": "client-secret",
        "extra": {"refresh_token": "refresh-token"},
    },
    "AIRFLOW_CONN_BUILDPASS_DEFAULT": {
        "conn_type": "buildpass",
        "host": "https://bp.example.com",
        "login": "c",
        "password": "client-secret",
    },
    "AIRFLOW_CONN_ACC_BUILDPASS_STAGING": {
        "conn_type": "aws",
        "login": "AKIARUNTIMETEST",
        "password": "staging-secret",
        "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
    },
}


@pytest.fixture
def nothing_defined(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AIRFLOW_VAR_ACC_BUILDPASS_CONFIG", *CONNECTIONS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def configured(nothing_defined: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    nothing_defined.setenv("AIRFLOW_VAR_ACC_BUILDPASS_CONFIG", json.dumps(VARIABLE))
    for name, fields in CONNECTIONS.items():
        if fields["conn_type"] == "acc":
            fields = {**fields, "extra": {**fields["extra"], "token_store": str(tmp_path)}}
        nothing_defined.setenv(name, json.dumps(fields))
    return nothing_defined


# -- the Variable --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("{not json", "Variable acc_buildpass_config is not valid JSON: Expecting property name"),
        ("[]", "Variable acc_buildpass_config must be a JSON object, got list"),
        ({"projects": VARIABLE["projects"]}, "'staging_bucket' is missing or not a valid bucket name"),
        ({"staging_bucket": "acc-buildpass-staging", "projects": []}, "'projects' must be a non-empty list"),
    ],
)
def test_a_bad_variable_is_one_line_naming_what_to_fix(raw: Any, names: str) -> None:
    with pytest.raises(ConfigError) as caught:
        runtime.parse_config(raw)
    assert names in str(caught.value) and "\n" not in str(caught.value)


def test_the_variable_parses_from_json_text_or_an_object_alike() -> None:
    assert runtime.parse_config(json.dumps(VARIABLE)) == runtime.parse_config(VARIABLE)
    assert runtime.parse_config(VARIABLE).projects[0].acc_project_id == PROJECT


def test_a_task_and_the_command_line_read_the_variable_from_airflow(configured: pytest.MonkeyPatch) -> None:
    config = runtime.load_config()
    assert (config.staging_bucket, config.staging_prefix) == ("acc-buildpass-staging", "acc-photos")


def test_an_unset_variable_says_how_to_create_it(nothing_defined: pytest.MonkeyPatch) -> None:
    with pytest.raises(runtime.VariableNotSet, match=r"^Variable acc_buildpass_config is not set: create it with"):
        runtime.load_config()


def test_the_api_server_reads_the_same_variable(nothing_defined: pytest.MonkeyPatch) -> None:
    with pytest.raises(runtime.VariableNotSet):
        runtime.load_config_in_api_server()
    nothing_defined.setenv("AIRFLOW_VAR_ACC_BUILDPASS_CONFIG", json.dumps(VARIABLE))
    assert runtime.load_config_in_api_server() == runtime.parse_config(VARIABLE)


# -- connections, clients, the store ---------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda config: runtime.build_acc(config, config.acc_conn_id),
        lambda config: runtime.build_buildpass(config, config.buildpass_conn_id, quick=True),
        lambda config: runtime.build_store(config),
        lambda config: runtime.require_connection(config.staging_conn_id),
    ],
    ids=["acc", "buildpass", "store", "require"],
)
def test_a_missing_connection_is_a_config_error_saying_how_to_define_it(
    nothing_defined: pytest.MonkeyPatch, build: Any
) -> None:
    with pytest.raises(ConfigError, match=r"is not defined: set AIRFLOW_CONN_[A-Z_]+ or add it"):
        build(runtime.parse_config(VARIABLE))


def test_clients_get_the_variables_retry_policy_or_checks_quick_one(configured: pytest.MonkeyPatch) -> None:
    config = runtime.parse_config({**VARIABLE, "retry": {"attempts": 5}})
    assert config.retry.attempts == 5
    with runtime.build_acc(config, config.acc_conn_id) as acc:
        assert acc.policy == config.retry and acc.base_url == "https://acc.example.com"
    with runtime.build_buildpass(config, config.buildpass_conn_id, quick=True) as buildpass:
        assert (buildpass.policy.attempts, buildpass.policy.max_wait, buildpass.policy.max_retry_after) == (3, 4, 10)


@pytest.mark.parametrize(
    ("profile", "attempts", "connect", "read"),
    [("task", 11, 10, 120), ("check", 4, 5, 120), ("ui", 4, 5, 20)],  # botocore: retries + the first call
)
def test_each_context_gets_its_store_profile(
    configured: pytest.MonkeyPatch, profile: str, attempts: int, connect: int, read: int
) -> None:
    store = runtime.build_store(runtime.load_config(), profile)
    config = store.s3.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": attempts}
    assert (config.connect_timeout, config.read_timeout) == (connect, read)
    assert (store.bucket, store.layout.prefix) == ("acc-buildpass-staging", "acc-photos")


def test_the_clients_a_task_opens_are_closed_when_it_is_done(
    configured: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(http.ApiClient, "close", lambda self: closed.append(type(self).__name__))
    config = runtime.load_config()
    with runtime.clients(config, buildpass=False) as (acc, buildpass):
        assert acc is not None and buildpass is None and closed == []
    assert closed == ["AccClient"]
    with pytest.raises(RuntimeError), runtime.clients(config):
        raise RuntimeError("the step failed")
    assert closed == ["AccClient", "BuildPassClient", "AccClient"]  # last opened, first closed


def test_select_projects_names_the_ids_it_does_not_map() -> None:
    config = runtime.parse_config(VARIABLE)
    assert runtime.select_projects(config, None) is config
    assert runtime.select_projects(config, [PROJECT, PROJECT]).projects == config.projects
    with pytest.raises(ConfigError, match=rf"ACC project\(s\) nope not mapped .*: choose among {PROJECT}"):
        runtime.select_projects(config, ["nope"])


# -- the pool and check --------------------------------------------------------------------------


def test_a_task_that_cannot_read_the_pool_skips_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(name: str) -> bool:
        raise RuntimeError("no metadata DB in a task")

    monkeypatch.setattr(runtime, "pool_exists", unreadable)
    assert runtime.pool_lookup_in_task("buildpass_api") is None
    monkeypatch.setattr(runtime, "pool_exists", lambda name: name == "buildpass_api")
    lookup = runtime.pool_lookup_in_task("buildpass_api")
    assert lookup is not None and lookup("buildpass_api") is True


def test_check_with_nothing_configured_names_each_thing_to_set(nothing_defined: pytest.MonkeyPatch) -> None:
    from acc_buildpass.pipeline.checks import PROBLEM, SKIP

    findings = runtime.check("buildpass_api", None)
    assert [(f.status, f.subject) for f in findings] == [
        (PROBLEM, "Variable acc_buildpass_config"),
        (PROBLEM, "ACC connection acc_default"),
        (PROBLEM, "BuildPass connection buildpass_default"),
        (SKIP, "staging bucket and project mappings"),
        (SKIP, "Airflow pool buildpass_api"),
    ]
    assert "AIRFLOW_CONN_ACC_DEFAULT" in findings[1].message
    assert "AIRFLOW_CONN_BUILDPASS_DEFAULT" in findings[2].message
    assert "a task cannot read the metadata DB" in findings[4].message
