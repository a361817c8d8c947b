"""The operator commands' logic (acc_buildpass.operations) with stand-in clients and an in-memory S3.

The real command, against the emulators and SeaweedFS, is tested in tests/integration/test_cli.py.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from acc_buildpass.cli import render
from acc_buildpass.clients.acc import AccClient, AccProject
from acc_buildpass.clients.retry import RetryPolicy
from acc_buildpass.clients.tokens import FileTokenStore, TokenState, fingerprint
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ApiError, ConfigError, InvalidPhoto
from acc_buildpass.models import AccPhoto, Window
from acc_buildpass.pipeline import checks, dry_run
from acc_buildpass.pipeline import projects as projects_step
from acc_buildpass.storage import Layout, Store
from botocore.exceptions import ClientError

PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
OTHER = "7d1e2f30-0000-4000-8000-000000000002"
START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))


class MemoryS3:
    """The S3 calls plan makes (reads, and a listing in pages of ``page`` keys)."""

    def __init__(self, page: int = 2) -> None:
        self.objects: dict[str, bytes] = {}
        self.page = page
        self.writes = 0

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:
        self.writes += 1
        self.objects[f"{Bucket}/{Key}"] = Body

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        if f"{Bucket}/{Key}" not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[f"{Bucket}/{Key}"])}

    def head_bucket(self, *, Bucket: str) -> None:
        return None

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        s3 = self

        class Paginator:
            def paginate(self, *, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:
                keys = sorted(k[len(Bucket) + 1 :] for k in s3.objects if k.startswith(f"{Bucket}/{Prefix}"))
                for i in range(0, len(keys), s3.page):
                    yield {"Contents": [{"Key": k} for k in keys[i : i + s3.page]]}

        return Paginator()


class StubAcc:
    """``iter_photos`` yields what it is given, in pages of three, reporting each page."""

    def __init__(self, items: list[AccPhoto | InvalidPhoto]) -> None:
        self.items = items

    def iter_photos(
        self, project_id: str, created_from: datetime, created_to: datetime, on_page: Callable[[int], None]
    ) -> Iterator[Any]:
        assert (created_from, created_to) == (WINDOW.start, WINDOW.end)
        for i in range(0, len(self.items), 3):
            on_page(len(self.items[i : i + 3]))
            yield from self.items[i : i + 3]

    def check_project(self, project_id: str) -> None:
        return None


def photo(n: int, **changes: Any) -> AccPhoto:
    base = AccPhoto(
        id=f"photo-{n:04d}",
        project_id=PROJECT,
        title=f"Slab {n}",
        description="",
        size=1000 + n,
        media_type="NORMAL",
        created_at=START + timedelta(minutes=n),
        taken_at=None,
        deleted_at=None,
    )
    return replace(base, **changes)


def config(**extra: Any) -> PipelineConfig:
    return PipelineConfig.from_variable(
        {
            "staging_bucket": "staging",
            "staging_prefix": "t",
            "projects": [{"acc_project_id": PROJECT, "builder_id": "buil_demo", "buildpass_project_id": "proj_demo"}],
            **extra,
        }
    )


def test_plan_counts_like_extraction_and_trusts_only_created_ledger_entries() -> None:
    cfg = config()
    store = Store(MemoryS3(), Layout("staging", "t"))
    for n, state in ((1, "created"), (2, "created"), (3, "intent")):
        store.put_json(store.layout.ledger("buil_demo", "proj_demo", f"photo-{n:04d}"), {"state": state})
    store.put_json(store.layout.ledger("buil_demo", "proj_other", "photo-0004"), {"state": "created"})
    writes = store.s3.writes
    listing: list[AccPhoto | InvalidPhoto] = [
        photo(1),
        photo(2),
        photo(3),  # only an intent in the ledger: still to copy
        photo(4),  # in the ledger of another BuildPass project: still to copy here
        photo(5, size=None),
        photo(6, deleted_at=START),
        photo(7, media_type="VIDEO"),
        photo(8, media_type="HOLOGRAM"),
        photo(2),  # listed twice
        InvalidPhoto(None, "invalid id None (missing)"),
    ]
    seen: list[tuple[int, int]] = []
    plans = dry_run.plan(StubAcc(listing), store, cfg, WINDOW, lambda m, pages, records: seen.append((pages, records)))  # type: ignore[arg-type]
    [result] = plans
    assert (result.found, result.eligible, result.already, result.to_copy) == (9, 5, 2, 3)
    assert result.to_copy_bytes == 1003 + 1004 and result.unknown_size == 1
    assert result.skipped == {"deleted in ACC": 1, "mediaType VIDEO not copied": 1}
    assert result.will_fail == {
        "unknown mediaType 'HOLOGRAM' (known: NORMAL, INFRARED, PHOTOSPHERE, VIDEO)": 1,
        "unreadable ACC record: invalid id None (missing)": 1,
    }
    assert seen == [(1, 3), (2, 6), (3, 9), (4, 10)]
    assert store.s3.writes == writes  # a dry run writes nothing

    data = dry_run.plan_json(WINDOW, plans)
    assert data["window"] == {
        "start": "2026-03-02T00:00:00Z",
        "end": "2026-03-03T00:00:00Z",
        "id": "20260302T000000Z--20260303T000000Z",
    }
    assert data["totals"]["to_copy"] == 3 and data["totals"]["skipped"] == 2 and data["totals"]["will_fail"] == 2
    table = render.render_plan(WINDOW, plans)
    assert "(+1 of unknown size)" in table and f"  {PROJECT}: 1 will fail: unknown mediaType 'HOLOGRAM'" in table


def test_plan_refuses_an_acc_project_that_is_not_visible_naming_the_key() -> None:
    class Missing(StubAcc):
        def check_project(self, project_id: str) -> None:
            from acc_buildpass.errors import NotFound

            raise NotFound("request refused", status=404)

    with pytest.raises(ConfigError, match=r"projects\[0\]\.acc_project_id"):
        dry_run.plan(Missing([]), Store(MemoryS3(), Layout("staging", "t")), config(), WINDOW)  # type: ignore[arg-type]


def test_check_pool_names_a_missing_pool_and_an_unreachable_db_once() -> None:
    assert checks.check_pool("buildpass_api", lambda name: True).status == checks.OK
    missing = checks.check_pool("buildpass_api", lambda name: False)
    assert missing.problem and 'airflow pools set buildpass_api 4 "BuildPass' in missing.line()

    def down(name: str) -> bool:
        raise RuntimeError("(sqlite3.OperationalError) unable to open database file\n[SQL: ...]")

    db = checks.check_pool("buildpass_api", down)
    assert db.problem and db.subject == "Airflow metadata DB"
    assert "unable to open database file" in db.message and "[SQL" not in db.message


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
