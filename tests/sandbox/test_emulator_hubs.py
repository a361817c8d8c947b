"""The ACC emulator's Data Management discovery endpoints (hubs, a hub's projects), over real HTTP,
and the ACC client that reads them (SPEC.md, "Data Management")."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import sandbox
from acc_buildpass.clients.acc import AccClient, strip_b
from acc_buildpass.clients.retry import RetryPolicy
from acc_buildpass.clients.tokens import FileTokenStore

ACC_CLIENT = ("acc-demo-client", "acc-demo-secret")
PROJECTS = [
    "0b0b0b0b-0000-4000-8000-000000000001",
    "0b0b0b0b-0000-4000-8000-000000000002",
    "0b0b0b0b-0000-4000-8000-000000000003",
    "0b0b0b0b-0000-4000-8000-000000000004",
    "0b0b0b0b-0000-4000-8000-000000000005",
]


SEED = 11  # the sandbox's seed (tests/sandbox/conftest.py)


def admin(box: sandbox.Sandbox, path: str, payload: object = None, method: str = "POST") -> dict:
    response = requests.request(method, box.acc_url + "/_admin" + path, json=payload, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def user_headers(box: sandbox.Sandbox) -> dict[str, str]:
    refresh = admin(box, "/refresh-token", {"client_id": ACC_CLIENT[0]})["refresh_token"]
    response = requests.post(
        box.acc_url + "/authentication/v2/token",
        auth=ACC_CLIENT,
        data={"grant_type": "refresh_token", "refresh_token": refresh},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def app_headers(box: sandbox.Sandbox) -> dict[str, str]:
    response = requests.post(
        box.acc_url + "/authentication/v2/token",
        auth=ACC_CLIENT,
        data={"grant_type": "client_credentials", "scope": "data:read"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def hub_id(box: sandbox.Sandbox, headers: dict[str, str]) -> str:
    hubs = requests.get(box.acc_url + "/project/v1/hubs", headers=headers, timeout=10).json()["data"]
    assert len(hubs) == 1
    return str(hubs[0]["id"])


def make_projects(box: sandbox.Sandbox) -> None:
    # Out of order on purpose: the listing is ordered by id, whatever the order of creation.
    for n, project in enumerate(reversed(PROJECTS)):
        admin(box, "/projects", {"project_id": project, "name": f"Tower {5 - n}"})


def test_hubs_lists_one_hub_with_a_b_prefixed_id_for_a_user_or_an_app_token(box: sandbox.Sandbox) -> None:
    url = box.acc_url + "/project/v1/hubs"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
    for headers in (user_headers(box), app_headers(box)):
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["jsonapi"] == {"version": "1.0"}
        assert payload["links"]["self"]["href"] == url
        [hub] = payload["data"]
        assert hub["type"] == "hubs" and hub["id"].startswith("b.") and len(hub["id"]) == 2 + 36
        assert hub["attributes"]["name"] == "Sandbox Construction Co."
        assert hub["attributes"]["extension"]["type"] == "hubs:autodesk.bim360:Account"


def test_the_hub_id_is_stable_for_a_seed_across_resets(box: sandbox.Sandbox) -> None:
    first = hub_id(box, user_headers(box))
    admin(box, "/reset")
    assert hub_id(box, user_headers(box)) == first


def test_hub_projects_lists_every_known_project_with_b_ids_names_and_its_hub(box: sandbox.Sandbox) -> None:
    make_projects(box)
    seeded = "0b0b0b0b-0000-4000-8000-0000000000aa"
    admin(box, "/seed", {"project_id": seeded, "count": 2})  # a seeded project is listed too, named by default
    headers = user_headers(box)
    hub = hub_id(box, headers)
    response = requests.get(f"{box.acc_url}/project/v1/hubs/{hub}/projects", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert "next" not in payload["links"]
    data = payload["data"]
    assert [p["id"] for p in data] == [f"b.{p}" for p in [*PROJECTS, seeded]]
    assert all(p["type"] == "projects" for p in data)
    assert [p["attributes"]["name"] for p in data] == [
        "Tower 1",
        "Tower 2",
        "Tower 3",
        "Tower 4",
        "Tower 5",
        "Sandbox project 0b0b0b0b",
    ]
    assert all(p["relationships"]["hub"]["data"] == {"type": "hubs", "id": hub} for p in data)
    assert data[0]["attributes"]["extension"]["data"] == {"projectType": "ACC"}
    # The id without its prefix is the project the Photos API knows.
    photos = requests.post(
        f"{box.acc_url}/construction/photos/v1/projects/{data[-1]['id'][2:]}/photos:filter",
        json={"limit": 50},
        headers=headers,
        timeout=10,
    )
    assert photos.status_code == 200 and len(photos.json()["results"]) == 2


def test_hub_projects_pages_follow_links_next_to_the_end(box: sandbox.Sandbox) -> None:
    make_projects(box)
    headers = user_headers(box)
    hub = hub_id(box, headers)
    url: str | None = f"{box.acc_url}/project/v1/hubs/{hub}/projects?page[limit]=2"
    pages: list[list[str]] = []
    while url:
        assert url.startswith(box.acc_url + "/project/v1/hubs/")
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        payload = response.json()
        pages.append([p["id"][2:] for p in payload["data"]])
        url = payload["links"].get("next", {}).get("href")
    assert pages == [PROJECTS[0:2], PROJECTS[2:4], PROJECTS[4:5]]
    capped = requests.get(
        f"{box.acc_url}/project/v1/hubs/{hub}/projects", params={"page[limit]": "5000"}, headers=headers, timeout=10
    )
    assert capped.status_code == 200 and len(capped.json()["data"]) == 5


@pytest.mark.parametrize("query", [{"page[limit]": "0"}, {"page[limit]": "two"}, {"page[number]": "-1"}])
def test_bad_page_arguments_are_400_in_the_json_api_shape(box: sandbox.Sandbox, query: dict[str, str]) -> None:
    headers = user_headers(box)
    hub = hub_id(box, headers)
    response = requests.get(f"{box.acc_url}/project/v1/hubs/{hub}/projects", params=query, headers=headers, timeout=10)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["status"] == "400" and error["code"] == "BAD_INPUT"


def test_an_unknown_hub_is_404_and_a_missing_token_401(box: sandbox.Sandbox) -> None:
    headers = user_headers(box)
    response = requests.get(f"{box.acc_url}/project/v1/hubs/b.nope/projects", headers=headers, timeout=10)
    assert response.status_code == 404
    assert response.json()["errors"][0]["status"] == "404"
    hub = hub_id(box, headers)
    assert requests.get(f"{box.acc_url}/project/v1/hubs/{hub}/projects", timeout=10).status_code == 401


def test_admin_projects_creates_an_empty_project_and_renames_it(box: sandbox.Sandbox) -> None:
    project = PROJECTS[0]
    created = admin(box, "/projects", {"project_id": project})
    assert created["project_id"] == project and created["name"] is None and created["hub_id"].startswith("b.")
    headers = user_headers(box)
    empty = requests.post(
        f"{box.acc_url}/construction/photos/v1/projects/{project}/photos:filter", json={}, headers=headers, timeout=10
    )
    assert empty.status_code == 200 and empty.json()["results"] == []
    assert admin(box, "/projects", {"project_id": project, "name": "Level 3 — tower"})["name"] == "Level 3 — tower"
    hub = created["hub_id"]
    data = requests.get(f"{box.acc_url}/project/v1/hubs/{hub}/projects", headers=headers, timeout=10).json()["data"]
    assert [(p["id"], p["attributes"]["name"]) for p in data] == [(f"b.{project}", "Level 3 — tower")]
    for bad in ({}, {"project_id": ""}, {"project_id": project, "name": 3}):
        assert requests.post(box.acc_url + "/_admin/projects", json=bad, timeout=5).status_code == 400


def test_routes_are_counted_and_take_faults(box: sandbox.Sandbox) -> None:
    make_projects(box)
    headers = user_headers(box)
    hub = hub_id(box, headers)
    admin(box, "/faults", {"script": [{"route": "hub-projects", "fault": "error5xx", "status": 503}]})
    url = f"{box.acc_url}/project/v1/hubs/{hub}/projects"
    assert requests.get(url, headers=headers, timeout=10).status_code == 503
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    stats = requests.get(box.acc_url + "/_admin/stats", timeout=5).json()["requests"]
    assert stats["hubs"] == 1 and stats["hub-projects"] == 2


def test_the_acc_client_lists_hubs_and_every_page_of_projects(box: sandbox.Sandbox, tmp_path: Path) -> None:
    make_projects(box)
    refresh = admin(box, "/refresh-token", {"client_id": ACC_CLIENT[0]})["refresh_token"]
    client = AccClient(
        box.acc_url,
        *ACC_CLIENT,
        refresh,
        FileTokenStore(tmp_path, key="hubs-test"),
        policy=RetryPolicy(attempts=3, initial_wait=0.05, max_wait=0.1),
    )
    # A 503 on the second page is retried; the listing still has every project once.
    admin(box, "/faults", {"script": [{"route": "hub-projects", "fault": "error5xx", "skip": 1}]})
    [hub] = client.list_hubs()
    assert hub.name == "Sandbox Construction Co." and hub.id.startswith("b.")
    listed = client.list_projects(hub.id, page_limit=2)
    assert [p.id for p in listed] == PROJECTS  # b. stripped, three pages, none twice
    assert [p.name for p in listed] == ["Tower 1", "Tower 2", "Tower 3", "Tower 4", "Tower 5"]
    assert {p.hub_id for p in listed} == {hub.id}
    stats = requests.get(box.acc_url + "/_admin/stats", timeout=5).json()["requests"]
    assert stats["hub-projects"] == 4  # three pages and the retry of the one that failed
    assert client.refreshes == 1  # one sign-in served every call
    assert strip_b("b.x") == "x" and strip_b("x") == "x"
