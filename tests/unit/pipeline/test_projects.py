"""``acc-buildpass projects`` (acc_buildpass.pipeline.projects): the starter Variable, and the ACC
client's Data Management paging it lists projects with."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from acc_buildpass.clients.acc import AccClient, AccProject
from acc_buildpass.clients.retry import RetryPolicy
from acc_buildpass.clients.tokens import FileTokenStore, TokenState, fingerprint
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ApiError, ConfigError
from acc_buildpass.pipeline import projects as projects_step

PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
OTHER = "7d1e2f30-0000-4000-8000-000000000002"


def config(**extra: Any) -> PipelineConfig:
    return PipelineConfig.from_variable(
        {
            "staging_bucket": "staging",
            "staging_prefix": "t",
            "projects": [{"acc_project_id": PROJECT, "builder_id": "buil_demo", "buildpass_project_id": "proj_demo"}],
            **extra,
        }
    )


def test_the_starter_config_keeps_mappings_and_puts_refused_placeholders_elsewhere() -> None:
    projects = [AccProject(PROJECT, "Tower A", "b.hub"), AccProject(OTHER, "Tower B", "b.hub")]
    fresh = projects_step.starter_config(projects, None, {})
    assert fresh["staging_bucket"] == projects_step.BUCKET_PLACEHOLDER
    assert [(p["acc_project_id"], p["acc_project_name"], p["builder_id"]) for p in fresh["projects"]] == [
        (PROJECT, "Tower A", projects_step.BUILDER_PLACEHOLDER),
        (OTHER, "Tower B", projects_step.BUILDER_PLACEHOLDER),
    ]
    with pytest.raises(ConfigError):
        PipelineConfig.from_variable(fresh)
    edited = json.loads(
        json.dumps(fresh)
        .replace(projects_step.BUCKET_PLACEHOLDER, "my-bucket")
        .replace(projects_step.BUILDER_PLACEHOLDER, "buil_x")
        .replace(projects_step.PROJECT_PLACEHOLDER, "proj_y")
    )
    assert [m.acc_project_id for m in PipelineConfig.from_variable(edited).projects] == [PROJECT, OTHER]

    current = config()
    builders = projects_step.known_builders(current, {"builder_ids": "buil_demo, buil_more"})
    assert builders == {"buil_demo": ["proj_demo"], "buil_more": []}
    kept = projects_step.starter_config(projects, current, projects_step.known_builders(current, {}))
    assert kept["staging_bucket"] == "staging" and kept["staging_prefix"] == "t"
    assert [(p["builder_id"], p["buildpass_project_id"]) for p in kept["projects"]] == [
        ("buil_demo", "proj_demo"),  # the current mapping
        ("buil_demo", projects_step.PROJECT_PLACEHOLDER),  # the only builder known; the project is to choose
    ]


# -- the ACC client's Data Management paging stays on the API's host ----------------------------


class FakeSession:
    """Answers GETs from a dict of URL → JSON, recording every URL asked for."""

    def __init__(self, pages: dict[str, Any]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        self.asked.append(url)
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(self.pages[url]).encode()
        response.headers["Content-Type"] = "application/json"
        response.url = url
        response.request = requests.Request(method, url).prepare()
        return response


def client(session: FakeSession, tmp_path: Path) -> AccClient:
    store = FileTokenStore(tmp_path, key="k")
    store.save(TokenState("refresh", fingerprint("refresh"), "access", time.time() + 3600))
    return AccClient(
        "https://acc.example", "id", "secret", "refresh", store, policy=RetryPolicy(attempts=1), session=session
    )


def test_projects_follow_links_next_on_the_same_host_only(tmp_path: Path) -> None:
    first = "https://acc.example/project/v1/hubs/b.hub/projects?page%5Blimit%5D=200"
    second = "https://acc.example/project/v1/hubs/b.hub/projects?page%5Bnumber%5D=1"
    item = {"type": "projects", "id": "b.p1", "attributes": {"name": "One"}}
    other = {"type": "projects", "id": "b.p2", "attributes": {}}
    ok = FakeSession(
        {
            first: {"data": [item, {"type": "folders", "id": "x"}], "links": {"next": {"href": second}}},
            second: {"data": [other], "links": {}},
        }
    )
    assert client(ok, tmp_path).list_projects("b.hub") == [
        AccProject("p1", "One", "b.hub"),
        AccProject("p2", "", "b.hub"),
    ]
    foreign = FakeSession({first: {"data": [item], "links": {"next": {"href": "https://evil.example/next"}}}})
    with pytest.raises(ApiError, match="another host"):
        client(foreign, tmp_path).list_projects("b.hub")
    assert foreign.asked == [first]
    looping = FakeSession({first: {"data": [item], "links": {"next": {"href": first}}}})
    with pytest.raises(ApiError, match="repeated"):
        client(looping, tmp_path).list_projects("b.hub")
    with pytest.raises(ValueError):
        client(ok, tmp_path).list_projects("../b.hub")
