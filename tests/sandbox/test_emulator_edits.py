"""What follow-edits needs of the emulators: editing and deleting in ACC, PATCH on BuildPass photos.

ACC's admin edit moves ``updatedAt`` and its soft-delete keeps the record listed with ``deletedAt``;
BuildPass's ``PATCH /photos/{id}`` validates like a create, and its rate limit and faults apply to it
as to every other route. BuildPass documents no DELETE of one photo, so the emulator has none.
"""

from __future__ import annotations

import requests
import sandbox
from sandbox import images

PROJECT = "5b0f8a52-1e0c-4c56-9d1e-7d2f0b6a9c11"
ACC_CLIENT = ("acc-demo-client", "acc-demo-secret")
BP_CLIENT = ("bp-demo-client", "bp-demo-secret")
BUILDER, BP_PROJECT = "buil_demo", "proj_demo"


SEED = 11  # the sandbox's seed (tests/sandbox/conftest.py)


def admin(url: str, path: str, payload: object = None, method: str = "POST") -> requests.Response:
    return requests.request(method, url + "/_admin" + path, json=payload, timeout=10)


def acc_headers(box: sandbox.Sandbox) -> dict[str, str]:
    token = admin(box.acc_url, "/refresh-token", {"client_id": ACC_CLIENT[0]}).json()["refresh_token"]
    response = requests.post(
        box.acc_url + "/authentication/v2/token",
        auth=ACC_CLIENT,
        data={"grant_type": "refresh_token", "refresh_token": token, "scope": "data:read"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def listed(box: sandbox.Sandbox, headers: dict[str, str]) -> dict[str, dict]:
    url = f"{box.acc_url}/construction/photos/v1/projects/{PROJECT}/photos:filter"
    response = requests.post(url, json={"limit": 50}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return {p["id"]: p for p in response.json()["results"]}


def test_acc_edit_moves_updated_at_and_delete_is_soft(box: sandbox.Sandbox) -> None:
    body = {"project_id": PROJECT, "count": 2, "start": "2024-03-01T00:00:00", "end": "2024-03-02T00:00:00"}
    first, second = admin(box.acc_url, "/seed", body).json()["ids"]
    headers = acc_headers(box)
    before = listed(box, headers)[first]  # seeded in 2024; the server clock is now

    edit = {"title": "Level 4 formwork", "description": "checked", "takenAt": "2024-02-28T09:30:00"}
    assert admin(box.acc_url, f"/photos/{first}", edit, method="PATCH").status_code == 200
    after = listed(box, headers)[first]
    assert {k: after[k] for k in edit} == edit
    assert after["updatedAt"] > before["updatedAt"] and after["createdAt"] == before["createdAt"]
    pinned = admin(box.acc_url, f"/photos/{first}", {"title": "x", "updatedAt": "2024-03-01T00:00:00"}, "PATCH")
    assert pinned.json()["updatedAt"] == "2024-03-01T00:00:00"  # a test may still set it

    deleted = admin(box.acc_url, f"/photos/{second}/delete", {"deletedBy": "PER8KQPK2JRT"})
    assert deleted.status_code == 200, deleted.text
    record = listed(box, headers)[second]  # still listed (the worst answer), marked
    assert record["deletedAt"] and record["deletedBy"] == "PER8KQPK2JRT" and record["updatedAt"] == record["deletedAt"]
    gone = requests.get(
        f"{box.acc_url}/construction/photos/v1/projects/{PROJECT}/photos/{second}", headers=headers, timeout=10
    )
    assert gone.status_code == 410
    again = admin(box.acc_url, f"/photos/{second}/delete")  # no body: the default user; nothing changes
    assert again.status_code == 200 and again.json()["deletedAt"] == record["deletedAt"]
    assert admin(box.acc_url, "/photos/no-such-photo/delete").status_code == 404
    assert admin(box.acc_url, f"/photos/{second}/delete", {"deletedBy": 7}).status_code == 400


def bp_headers(box: sandbox.Sandbox) -> dict[str, str]:
    response = requests.post(
        box.buildpass_url + "/oauth/token",
        json={"grant_type": "client_credentials", "client_id": BP_CLIENT[0], "client_secret": BP_CLIENT[1]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"], "X-BuildPass-Api-Version": "v1"}


def new_photo(box: sandbox.Sandbox, headers: dict[str, str]) -> dict:
    upload = requests.post(
        f"{box.buildpass_url}/builders/{BUILDER}/attachments/upload",
        files={"file": ("a.jpg", images.jpeg_bytes("edit-a", 3000), "image/jpeg")},
        data={"type": "attachment"},
        headers=headers,
        timeout=10,
    )
    assert upload.status_code == 201, upload.text
    attachment = {k: upload.json()[k] for k in ("key", "regionId", "type")}
    body = {"fileName": "old.jpg", "projectId": BP_PROJECT, "imageAttachment": attachment, "description": "old"}
    created = requests.post(f"{box.buildpass_url}/builders/{BUILDER}/photos", json=body, headers=headers, timeout=10)
    assert created.status_code == 201, created.text
    return created.json()


def test_buildpass_patch_validates_and_is_rate_limited_and_faulted_like_any_route(box: sandbox.Sandbox) -> None:
    headers = bp_headers(box)
    photo = new_photo(box, headers)
    url = f"{box.buildpass_url}/builders/{BUILDER}/photos/{photo['id']}"
    admin(box.buildpass_url, "/clock", {"advance_seconds": 60})

    changes = {"fileName": "Level 4 formwork.jpg", "description": None, "capturedAt": "2024-02-28T09:30:00Z"}
    patched = requests.patch(url, json=changes, headers=headers, timeout=10)
    assert patched.status_code == 200, patched.text
    got = requests.get(url, headers=headers, timeout=10).json()
    assert (got["fileName"], got["description"], got["photoTakenDate"]) == (
        "Level 4 formwork.jpg",
        None,
        "2024-02-28T09:30:00.000Z",
    )
    assert got["updatedAt"] > photo["updatedAt"] and got["key"] == photo["key"]
    for bad in ({"fileName": "a/b.jpg"}, {"capturedAt": "2024-02-28T09:30:00"}, {"description": 3}):
        assert requests.patch(url, json=bad, headers=headers, timeout=10).status_code == 400, bad
    missing = requests.patch(url.replace(photo["id"], "phot_nope"), json=changes, headers=headers, timeout=10)
    assert missing.status_code == 404

    admin(box.buildpass_url, "/faults", {"script": [{"route": "photo", "fault": "error5xx", "status": 503}]})
    assert requests.patch(url, json={"description": "x"}, headers=headers, timeout=10).status_code == 503
    assert requests.get(url, headers=headers, timeout=10).json()["description"] is None  # not processed
    admin(box.buildpass_url, "/faults", {})
    admin(box.buildpass_url, "/rate-limit", {"limit": 1, "window_seconds": 60})
    statuses = [requests.patch(url, json={"description": "y"}, headers=headers, timeout=10) for _ in range(2)]
    assert [r.status_code for r in statuses] == [200, 429]
    assert statuses[1].headers["X-RateLimit-Remaining"] == "0"
    admin(box.buildpass_url, "/rate-limit", {"limit": 0})
    stats = admin(box.buildpass_url, "/stats", method="GET").json()["requests"]
    assert stats["photo"] >= 10

    # No DELETE of one photo is documented: the emulator offers none, and the photo stays.
    assert requests.delete(url, headers=headers, timeout=10).status_code in (404, 405)
    assert requests.get(url, headers=headers, timeout=10).json()["archivedAt"] is None
