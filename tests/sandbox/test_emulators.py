"""The ACC and BuildPass emulators over real HTTP (include/sandbox, contract in SPEC.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import sandbox
import urllib3
from sandbox import images

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
ACC_CLIENT = ("acc-demo-client", "acc-demo-secret")
BP_CLIENT = ("bp-demo-client", "bp-demo-secret")
BUILDER = "buil_demo"
BP_PROJECT = "proj_demo"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


SEED = 7  # the sandbox's seed (tests/sandbox/conftest.py)


# -- helpers -----------------------------------------------------------------------------------


def admin(url: str, path: str, payload: object = None, method: str = "POST") -> dict:
    response = requests.request(method, url + "/_admin" + path, json=payload, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def refresh(box: sandbox.Sandbox, refresh_token: str, client: tuple[str, str] = ACC_CLIENT) -> requests.Response:
    return requests.post(
        box.acc_url + "/authentication/v2/token",
        auth=client,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": "data:read"},
        timeout=10,
    )


def acc_headers(box: sandbox.Sandbox) -> dict[str, str]:
    token = admin(box.acc_url, "/refresh-token", {"client_id": ACC_CLIENT[0]})["refresh_token"]
    response = refresh(box, token)
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


def filter_url(box: sandbox.Sandbox, project: str = PROJECT) -> str:
    return f"{box.acc_url}/construction/photos/v1/projects/{project}/photos:filter"


def seed(box: sandbox.Sandbox, count: int, **kw: object) -> list[str]:
    body = {"project_id": PROJECT, "count": count, "start": "2024-03-01T00:00:00", "end": "2024-03-02T00:00:00"}
    body.update(kw)
    return admin(box.acc_url, "/seed", body)["ids"]


def all_pages(box: sandbox.Sandbox, headers: dict[str, str], body: dict) -> list[dict]:
    url, results, cursors = filter_url(box), [], set()
    while True:
        response = requests.post(url, json=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        payload = response.json()
        results.extend(payload["results"])
        nxt = payload["pagination"].get("nextPost")
        if not nxt:
            return results
        assert nxt["body"]["cursorState"] not in cursors
        cursors.add(nxt["body"]["cursorState"])
        url, body = nxt["url"], nxt["body"]


def bp_token(box: sandbox.Sandbox, client: tuple[str, str] = BP_CLIENT) -> str:
    response = requests.post(
        box.buildpass_url + "/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": client[0],
            "client_secret": client[1],
            "audience": "https://api.buildpass.global",
            "scope": "read:photos write:photos",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def bp_headers(box: sandbox.Sandbox) -> dict[str, str]:
    return {"Authorization": "Bearer " + bp_token(box), "X-BuildPass-Api-Version": "v1"}


def multipart(
    fields: list[tuple[str, str | tuple[str, bytes, str]]], boundary: str = "sbx-boundary-1"
) -> tuple[bytes, str]:
    out = bytearray()
    for name, value in fields:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, tuple):
            filename, data, ctype = value
            out += f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode()
            out += f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n"
        else:
            out += f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def bulk_upload(box: sandbox.Sandbox, headers: dict[str, str], files: list[bytes]) -> requests.Response:
    fields: list[tuple[str, str | tuple[str, bytes, str]]] = []
    for i, data in enumerate(files):
        fields.append((f"type:{i}", "attachment"))
        fields.append((f"file:{i}", (f"photo{i}.jpg", data, "image/jpeg")))
    body, ctype = multipart(fields)
    return requests.post(
        f"{box.buildpass_url}/builders/{BUILDER}/attachments/bulk-upload",
        data=body,
        headers={**headers, "Content-Type": ctype},
        timeout=30,
    )


def jpeg(key: str, size: int = 3000) -> bytes:
    return images.jpeg_bytes(key, size)


# -- images ------------------------------------------------------------------------------------


def test_generated_jpeg_is_deterministic_streamed_and_well_formed() -> None:
    for size in (0, 3, 22, 100, 159, 160, 161, 162, 163, 5000, 65537 + 159 + 2, 3 * 65537 + 200):
        data = images.jpeg_bytes("k", size)
        assert len(data) == size
        if size >= 4:
            assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
        if size >= images.MIN_FULL_JPEG:
            assert data[:4] == b"\xff\xd8\xff\xe0" and data[6:11] == b"JFIF\x00"
            _walk_markers(data)
    assert images.jpeg_bytes("k", 5000) == images.jpeg_bytes("k", 5000)
    assert images.jpeg_bytes("k", 5000) != images.jpeg_bytes("j", 5000)
    # 50 MB without building it: chunks of at most 64 KiB, exact total, head and tail right
    total, first, last = 0, b"", b""
    for chunk in images.iter_jpeg("big", 50_000_000):
        assert len(chunk) <= images.CHUNK
        first = first or chunk
        total += len(chunk)
        last = chunk
    assert total == 50_000_000 and first[:3] == b"\xff\xd8\xff" and last[-2:] == b"\xff\xd9"
    assert sum(map(len, images.iter_jpeg("big", 50_000_000, limit=1000))) == 1000


def _walk_markers(data: bytes) -> None:
    """Segment structure: SOI, length-delimited segments (fill bytes allowed), SOS, scan, EOI."""
    i = 2
    seen = []
    while True:
        assert data[i] == 0xFF
        while data[i + 1] == 0xFF:
            i += 1
        marker = data[i + 1]
        seen.append(marker)
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        i += 2 + length
        if marker == 0xDA:
            break
    assert data[i:] == b"\x3f\xff\xd9"
    assert seen[0] == 0xE0 and {0xDB, 0xC0, 0xC4} <= set(seen)


# -- ACC sign-in -------------------------------------------------------------------------------


def test_refresh_token_rotation_and_invalid_grant_on_reuse(box: sandbox.Sandbox) -> None:
    first = admin(box.acc_url, "/refresh-token", {"client_id": ACC_CLIENT[0]})["refresh_token"]
    response = refresh(box, first)
    assert response.status_code == 200
    payload = response.json()
    assert payload["token_type"] == "Bearer" and payload["expires_in"] == 3600
    second = payload["refresh_token"]
    assert second != first
    reuse = refresh(box, first)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    third = refresh(box, second)
    assert third.status_code == 200
    assert refresh(box, second).json()["error"] == "invalid_grant"
    assert refresh(box, third.json()["refresh_token"]).status_code == 200
    # client id/secret as form fields work too; a wrong secret is invalid_client
    token = admin(box.acc_url, "/refresh-token", {})["refresh_token"]
    bad = refresh(box, token, ("acc-demo-client", "nope"))
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    form = requests.post(
        box.acc_url + "/authentication/v2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": ACC_CLIENT[0],
            "client_secret": ACC_CLIENT[1],
        },
        timeout=5,
    )
    assert form.status_code == 200
    # another app's refresh token is refused
    admin(box.acc_url, "/clients", {"client_id": "other", "client_secret": "other-secret"})
    foreign = admin(box.acc_url, "/refresh-token", {"client_id": "other"})["refresh_token"]
    assert refresh(box, foreign).json()["error"] == "invalid_grant"
    secrets_seen = requests.get(box.acc_url + "/_admin/secrets", timeout=5).json()
    assert {first, second, payload["access_token"], "acc-demo-secret", "other-secret"} <= set(secrets_seen)


def test_two_legged_token_refused_and_access_token_expiry(box: sandbox.Sandbox) -> None:
    seed(box, 1)
    two = requests.post(
        box.acc_url + "/authentication/v2/token", auth=ACC_CLIENT, data={"grant_type": "client_credentials"}, timeout=5
    ).json()["access_token"]
    assert (
        requests.post(filter_url(box), json={}, headers={"Authorization": f"Bearer {two}"}, timeout=5).status_code
        == 403
    )
    missing = requests.post(filter_url(box), json={}, timeout=5)
    assert missing.status_code == 401 and "The token is not valid" in missing.json()["developerMessage"]
    admin(box.acc_url, "/faults", {"access_token_ttl": 60})
    headers = acc_headers(box)
    assert requests.post(filter_url(box), json={}, headers=headers, timeout=5).status_code == 200
    admin(box.acc_url, "/clock", {"offset_seconds": 61})
    assert requests.post(filter_url(box), json={}, headers=headers, timeout=5).status_code == 401
    # refresh tokens die after 15 days
    old = admin(box.acc_url, "/refresh-token", {})["refresh_token"]
    admin(box.acc_url, "/clock", {"advance_seconds": 15 * 86400 + 1})
    assert refresh(box, old).json()["error"] == "invalid_grant"


# -- ACC photos --------------------------------------------------------------------------------


def test_paging_with_next_post_and_cursor_state(box: sandbox.Sandbox) -> None:
    ids = seed(box, 120, deleted=4, videos=3)
    headers = acc_headers(box)
    first = requests.post(
        filter_url(box), json={"limit": 500, "sort": ["createdAt", "asc"]}, headers=headers, timeout=5
    )
    page = first.json()
    assert page["pagination"]["limit"] == 50 and len(page["results"]) == 50
    nxt = page["pagination"]["nextPost"]
    assert nxt["url"] == filter_url(box)
    # with cursorState every other field is ignored
    same = requests.post(
        nxt["url"], json={**nxt["body"], "limit": 1, "filter": {"id": ["x"]}}, headers=headers, timeout=5
    )
    assert len(same.json()["results"]) == 50
    results = all_pages(box, headers, {"limit": 50})
    assert len(results) == 120 and {r["id"] for r in results} == set(ids)
    keys = [(r["createdAt"], r["id"]) for r in results]
    assert keys == sorted(keys)
    assert sum(1 for r in results if r["deletedAt"]) == 4
    assert sum(1 for r in results if r["mediaType"] == "VIDEO") == 3
    assert all("Z" not in r["createdAt"] and "signedUrls" not in r for r in results)
    assert all(r["urls"]["fileUrl"].startswith(box.acc_url + "/construction/photos/assets/") for r in results)
    default = requests.post(filter_url(box), json={}, headers=headers, timeout=5).json()
    assert default["pagination"]["limit"] == 25 and len(default["results"]) == 25
    bad = requests.post(filter_url(box), json={"cursorState": "bm90IGEgY3Vyc29y"}, headers=headers, timeout=5)
    assert bad.status_code == 400
    assert requests.post(filter_url(box, "nope"), json={}, headers=headers, timeout=5).status_code == 404
    desc = all_pages(box, headers, {"limit": 50, "sort": ["createdAt", "desc"]})
    assert [r["id"] for r in desc] == [r["id"] for r in reversed(results)]


def test_pages_stay_consistent_when_photos_are_added_mid_query(box: sandbox.Sandbox) -> None:
    seed(box, 100)
    headers = acc_headers(box)
    page1 = requests.post(filter_url(box), json={"limit": 50}, headers=headers, timeout=5).json()
    seen = [r["id"] for r in page1["results"]]
    added = seed(box, 40)  # same day: some sort before the cursor, some after
    cursor_url, body = page1["pagination"]["nextPost"]["url"], page1["pagination"]["nextPost"]["body"]
    rest: list[dict] = []
    while True:
        payload = requests.post(cursor_url, json=body, headers=headers, timeout=5).json()
        rest.extend(payload["results"])
        if "nextPost" not in payload["pagination"]:
            break
        body = payload["pagination"]["nextPost"]["body"]
    rest_ids = [r["id"] for r in rest]
    assert not set(seen) & set(rest_ids) and len(rest_ids) == len(set(rest_ids))
    last_seen = (page1["results"][-1]["createdAt"], seen[-1])
    assert all((r["createdAt"], r["id"]) > last_seen for r in rest)
    # every original photo is seen exactly once; the added ones only if they sort after the cursor
    everything = all_pages(box, headers, {"limit": 50})
    originals = {r["id"] for r in everything} - set(added)
    assert originals <= set(seen) | set(rest_ids)


def _put(box: sandbox.Sandbox, records: list[dict], bodies: dict | None = None) -> None:
    admin(box.acc_url, "/photos", {"project_id": PROJECT, "photos": records, "bodies": bodies or {}})


def _record(photo_id: str, created: str, **extra: object) -> dict:
    return {"id": photo_id, "createdAt": created, "title": photo_id, "size": 500, "mediaType": "NORMAL", **extra}


def test_range_filter_is_inclusive_at_both_ends(box: sandbox.Sandbox) -> None:
    _put(
        box,
        [
            _record("before", "2024-03-01T09:59:59"),
            _record("at-start", "2024-03-01T10:00:00"),
            _record("inside", "2024-03-01T10:30:00.500"),
            _record("at-end", "2024-03-01T11:00:00"),
            _record("after", "2024-03-01T11:00:01"),
            _record("zoned", "2024-03-01T12:30:00+02:00"),  # 10:30 UTC
            _record("broken", "yesterday"),
        ],
    )
    headers = acc_headers(box)

    def ids(flt: dict) -> set[str]:
        return {r["id"] for r in all_pages(box, headers, {"filter": flt, "limit": 50})}

    assert ids({"createdAt": "2024-03-01T10:00:00..2024-03-01T11:00:00"}) == {"at-start", "inside", "at-end", "zoned"}
    assert ids({"createdAt": "2024-03-01T10:00:00Z..2024-03-01T13:00:00+02:00"}) == {
        "at-start",
        "inside",
        "at-end",
        "zoned",
    }
    assert ids({"createdAt": "2024-03-01T11:00:00.."}) == {"at-end", "after"}
    assert ids({"createdAt": "..2024-03-01T10:00:00"}) == {"before", "at-start"}
    assert "broken" in ids({})
    assert ids({"title": "AT-", "createdAt": "2024-03-01T00:00:00..2024-03-02T00:00:00"}) == {"at-start", "at-end"}
    for bad in ("2024-03-01", "x..y", 5):
        response = requests.post(filter_url(box), json={"filter": {"createdAt": bad}}, headers=headers, timeout=5)
        assert response.status_code == 400


def test_id_filter_returns_signed_urls_and_deleted_photos(box: sandbox.Sandbox) -> None:
    ids = seed(box, 30, deleted=30)
    headers = acc_headers(box)
    wanted = [*ids[:3], "5439bfb7-8006-4388-a454-f02560f99566"]
    body = {"filter": {"id": wanted}, "include": ["signedUrls"], "limit": 50}
    results = requests.post(filter_url(box), json=body, headers=headers, timeout=5).json()["results"]
    assert {r["id"] for r in results} == set(ids[:3])
    for r in results:
        assert r["deletedAt"] and r["signedUrls"]["fileUrl"].startswith(box.acc_url + "/oss/")
        assert "X-Amz-Expires=60" in r["signedUrls"]["fileUrl"]
    media = requests.post(filter_url(box), json={"filter": {"mediaType": ["VIDEO"]}}, headers=headers, timeout=5)
    assert media.json()["results"] == []


def test_get_photo_and_gone(box: sandbox.Sandbox) -> None:
    ids = seed(box, 3)
    headers = acc_headers(box)
    url = f"{box.acc_url}/construction/photos/v1/projects/{PROJECT}/photos/"
    plain = requests.get(url + ids[0], headers=headers, timeout=5)
    assert plain.status_code == 200 and "signedUrls" not in plain.json()
    record = requests.get(url + ids[0], params={"include": "signedUrls"}, headers=headers, timeout=5).json()
    expected_keys = {
        "createdAt", "createdBy", "deletedAt", "deletedBy", "description", "id", "isPublic", "latitude", "locked",
        "longitude", "mediaType", "projectId", "signedUrls", "size", "takenAt", "title", "type", "updatedAt",
        "updatedBy", "urls", "userCreatedAt",
    }  # fmt: skip
    assert expected_keys <= set(record)
    admin(box.acc_url, f"/photos/{ids[0]}", {"deletedAt": "2024-03-05T00:00:00", "deletedBy": "X"}, method="PATCH")
    assert requests.get(url + ids[0], headers=headers, timeout=5).status_code == 410
    assert requests.get(url + "nope", headers=headers, timeout=5).status_code == 404
    assert requests.get(url + ids[1], timeout=5).status_code == 401


def test_signed_urls_expire_refuse_authorization_and_serve_the_bytes(box: sandbox.Sandbox) -> None:
    ids = seed(box, 2, min_size=40_000, max_size=90_000)
    # Long enough for a loaded machine; expiry is then reached by moving the emulator's clock.
    admin(box.acc_url, "/faults", {"signed_url_ttl": 60})
    headers = acc_headers(box)
    body = {"filter": {"id": ids}, "include": ["signedUrls"]}
    results = requests.post(filter_url(box), json=body, headers=headers, timeout=5).json()["results"]
    truth = {p["id"]: p for p in admin(box.acc_url, f"/photos?project_id={PROJECT}", method="GET")["photos"]}
    for r in results:
        url = r["signedUrls"]["fileUrl"]
        assert "X-Amz-Expires=60" in url
        got = requests.get(url, timeout=5)
        assert got.status_code == 200 and got.headers["Content-Type"] == "image/jpeg"
        assert len(got.content) == r["size"] == int(got.headers["Content-Length"])
        assert hashlib.sha256(got.content).hexdigest() == truth[r["id"]]["sha256"]
        assert got.content[:4] == b"\xff\xd8\xff\xe0" and got.content[-2:] == b"\xff\xd9"
        both = requests.get(url, headers=headers, timeout=5)
        assert both.status_code == 400 and b"<Code>InvalidArgument</Code>" in both.content
        tampered = requests.get(url[:-4] + "0000", timeout=5)
        assert tampered.status_code == 403 and b"AccessDenied" in tampered.content
        # the asset URL needs the bearer token instead
        asset = r["urls"]["fileUrl"]
        assert requests.get(asset, timeout=5).status_code == 401
        assert requests.get(asset, headers=headers, timeout=5).content == got.content
    admin(box.acc_url, "/clock", {"advance_seconds": 61})
    expired = requests.get(results[0]["signedUrls"]["fileUrl"], timeout=5)
    assert expired.status_code == 403
    assert b"<Code>AccessDenied</Code><Message>Request has expired</Message>" in expired.content


def test_download_behaviours(box: sandbox.Sandbox) -> None:
    ids = seed(box, 6, min_size=10_000, max_size=10_000)
    behaviours = ["ok", "gone", "error500", "short", "empty", "notimage"]
    for photo_id, behaviour in zip(ids, behaviours, strict=True):
        admin(box.acc_url, f"/photos/{photo_id}/behaviour", {"download": behaviour})
    headers = acc_headers(box)
    results = requests.post(
        filter_url(box), json={"filter": {"id": ids}, "include": ["signedUrls"]}, headers=headers, timeout=5
    ).json()["results"]
    urls = {r["id"]: r["signedUrls"]["fileUrl"] for r in results}
    by = dict(zip(behaviours, ids, strict=True))
    assert requests.get(urls[by["ok"]], timeout=5).status_code == 200
    gone = requests.get(urls[by["gone"]], timeout=5)
    assert gone.status_code == 404 and b"NoSuchKey" in gone.content
    assert requests.get(urls[by["error500"]], timeout=5).status_code == 500
    with pytest.raises(requests.exceptions.RequestException):
        requests.get(urls[by["short"]], timeout=5).content  # noqa: B018
    short = requests.get(urls[by["short"]], stream=True, timeout=5)
    assert short.headers["Content-Length"] == "10000"
    got = bytearray()
    with pytest.raises(urllib3.exceptions.ProtocolError):
        for chunk in short.raw.stream(4096, decode_content=False):
            got += chunk
    assert len(got) == 5000
    empty = requests.get(urls[by["empty"]], timeout=5)
    assert empty.status_code == 200 and empty.content == b""
    text = requests.get(urls[by["notimage"]], timeout=5)
    assert text.status_code == 200 and images.sniff_image(text.content[:16]) is None
    assert requests.get(box.acc_url + "/construction/photos/v1/projects/x", timeout=5).status_code == 404


def test_client_disconnect_mid_download_does_not_hurt_the_server(box: sandbox.Sandbox) -> None:
    ids = seed(box, 1, min_size=5_000_000, max_size=5_000_000)
    headers = acc_headers(box)
    body = {"filter": {"id": ids}, "include": ["signedUrls"]}
    url = requests.post(filter_url(box), json=body, headers=headers, timeout=5).json()["results"][0]["signedUrls"][
        "fileUrl"
    ]
    for _ in range(3):
        response = requests.get(url, stream=True, timeout=5)
        next(response.iter_content(1024))
        response.close()
    with socket.create_connection(("127.0.0.1", int(box.acc_url.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"POST /authentication/v2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    assert len(requests.get(url, timeout=10).content) == 5_000_000


def test_admin_photos_keep_malformed_records_as_given(box: sandbox.Sandbox) -> None:
    body = base64.b64encode(b"\x89PNG\r\n\x1a\nrest").decode()
    _put(
        box,
        [
            {"id": "png", "createdAt": "2024-03-01T10:00:00", "size": 12, "title": 42},
            {"createdAt": "2024-03-01T10:00:01", "title": "no id"},
            {"id": "lying-size", "createdAt": "2024-03-01T10:00:02", "size": 10},
        ],
        {"png": body},
    )
    admin(box.acc_url, "/photos/lying-size", {"size": 99999}, method="PATCH")
    photos = admin(box.acc_url, f"/photos?project_id={PROJECT}", method="GET")["photos"]
    assert [p.get("id") for p in photos] == ["png", None, "lying-size"]
    assert photos[0]["sha256"] == hashlib.sha256(b"\x89PNG\r\n\x1a\nrest").hexdigest()
    headers = acc_headers(box)
    results = all_pages(box, headers, {"include": ["signedUrls"]})
    assert results[0]["title"] == 42 and "id" not in results[1]
    assert len(requests.get(results[2]["signedUrls"]["fileUrl"], timeout=5).content) == 10


# -- faults ------------------------------------------------------------------------------------


def test_scripted_faults_fire_in_order(box: sandbox.Sandbox) -> None:
    seed(box, 5)
    headers = acc_headers(box)
    admin(
        box.acc_url,
        "/faults",
        {
            "retry_after": 3,
            "script": [
                {"route": "photos:filter", "fault": "error5xx", "status": 503, "times": 1},
                {"route": "photos:filter", "fault": "rate_limit", "times": 1},
                {"route": "photos:filter", "fault": "reset", "times": 1},
                {"route": "photos:filter", "fault": "truncate", "times": 1},
                {"route": "photo", "fault": "error5xx", "skip": 1, "times": 1},
            ],
        },
    )
    first = requests.post(filter_url(box), json={}, headers=headers, timeout=5)
    assert first.status_code == 503 and "developerMessage" in first.json()
    limited = requests.post(filter_url(box), json={}, headers=headers, timeout=5)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "3"
    assert limited.json() == {"developerMessage": "Quota limit exceeded.", "errorCode": "ERR-429"}
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(filter_url(box), json={}, headers=headers, timeout=5)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.post(filter_url(box), json={}, headers=headers, timeout=5)
    ok = requests.post(filter_url(box), json={}, headers=headers, timeout=5)
    assert ok.status_code == 200
    photo_url = f"{box.acc_url}/construction/photos/v1/projects/{PROJECT}/photos/{ok.json()['results'][0]['id']}"
    assert requests.get(photo_url, headers=headers, timeout=5).status_code == 200  # skipped once
    assert requests.get(photo_url, headers=headers, timeout=5).status_code in (500, 502, 503)
    assert requests.get(photo_url, headers=headers, timeout=5).status_code == 200
    config = requests.get(box.acc_url + "/_admin/faults", timeout=5).json()
    assert all(entry["times"] == 0 for entry in config["script"])
    stats = requests.get(box.acc_url + "/_admin/stats", timeout=5).json()
    assert stats["requests"]["photos:filter"] == 5 and stats["requests"]["photo"] == 3
    assert requests.post(box.acc_url + "/_admin/faults", json={"rates": {"boom": 1}}, timeout=5).status_code == 400
    assert requests.post(box.acc_url + "/_admin/faults", json={"routes": ["nope"]}, timeout=5).status_code == 400


def test_lost_response_on_token_refresh_still_rotates_the_token(box: sandbox.Sandbox) -> None:
    token = admin(box.acc_url, "/refresh-token", {})["refresh_token"]
    admin(box.acc_url, "/faults", {"script": [{"route": "token", "fault": "lost_response"}]})
    with pytest.raises(requests.exceptions.ConnectionError):
        refresh(box, token)
    assert refresh(box, token).json()["error"] == "invalid_grant"


def test_random_faults_are_deterministic_for_a_seed(box: sandbox.Sandbox) -> None:
    seed(box, 2)
    headers = acc_headers(box)

    def run() -> list[object]:
        admin(
            box.acc_url,
            "/faults",
            {"seed": 42, "rates": {"error5xx": 0.3, "rate_limit": 0.2, "reset": 0.1}, "routes": ["photos:filter"]},
        )
        outcome: list[object] = []
        with requests.Session() as session:
            for _ in range(30):
                try:
                    outcome.append(session.post(filter_url(box), json={}, headers=headers, timeout=5).status_code)
                except requests.exceptions.ConnectionError:
                    outcome.append("reset")
        return outcome

    first, second = run(), run()
    assert first == second
    assert {200, 429, "reset"} <= set(first) and {500, 502, 503} & set(first)
    # the routes list confines the rates: the token route is untouched
    for _ in range(10):
        assert refresh(box, admin(box.acc_url, "/refresh-token", {})["refresh_token"]).status_code == 200


# -- BuildPass ---------------------------------------------------------------------------------


def test_buildpass_sign_in_api_version_and_access(box: sandbox.Sandbox) -> None:
    url = box.buildpass_url
    form = requests.post(
        url + "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "read:photos"},
        auth=BP_CLIENT,
        timeout=5,
    )
    assert form.status_code == 200 and form.json()["scope"] == "read:photos" and form.json()["expires_in"] == 3600
    bad = requests.post(
        url + "/oauth/token",
        json={"grant_type": "client_credentials", "client_id": "bp-demo-client", "client_secret": "x"},
        timeout=5,
    )
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"
    grant = requests.post(url + "/oauth/token", json={"grant_type": "password"}, auth=BP_CLIENT, timeout=5)
    assert grant.json()["error"] == "unsupported_grant_type"
    scope = requests.post(
        url + "/oauth/token", json={"grant_type": "client_credentials", "scope": "admin"}, auth=BP_CLIENT, timeout=5
    )
    assert scope.json()["error"] == "invalid_scope"
    token = bp_token(box)
    photos = f"{url}/builders/{BUILDER}/photos?projectId={BP_PROJECT}"
    no_version = requests.get(photos, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert no_version.status_code == 400 and "X-BuildPass-Api-Version" in no_version.json()["error"]["message"]
    assert requests.get(photos, headers={"X-BuildPass-Api-Version": "v1"}, timeout=5).status_code == 401
    headers = {"Authorization": f"Bearer {token}", "X-BuildPass-Api-Version": "v1"}
    assert requests.get(photos, headers=headers, timeout=5).json() == {"data": []}
    assert requests.get(f"{url}/builders/buil_other/photos", headers=headers, timeout=5).status_code == 403
    read_only = {**headers, "Authorization": "Bearer " + form.json()["access_token"]}
    create = requests.post(f"{url}/builders/{BUILDER}/photos", json={"fileName": "a.jpg"}, headers=read_only, timeout=5)
    assert create.status_code == 403
    admin(url, "/faults", {"access_token_ttl": 60})
    short = bp_token(box)
    admin(url, "/clock", {"advance_seconds": 61})
    expired = requests.get(photos, headers={**headers, "Authorization": f"Bearer {short}"}, timeout=5)
    assert expired.status_code == 401


def test_buildpass_rate_limit_headers_and_429(box: sandbox.Sandbox) -> None:
    url = box.buildpass_url
    headers = bp_headers(box)
    photos = f"{url}/builders/{BUILDER}/photos?projectId={BP_PROJECT}"
    first = requests.get(photos, headers=headers, timeout=5)
    assert first.headers["X-RateLimit-Limit"] == "100"
    assert first.headers["X-RateLimit-Remaining"] == "98"  # the token call counted too
    assert abs(int(first.headers["X-RateLimit-Reset"]) - time.time()) <= 11
    admin(url, "/rate-limit", {"limit": 3, "window_seconds": 60})
    statuses = [requests.get(photos, headers=headers, timeout=5) for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    limited = statuses[3]
    assert limited.json() == {"error": {"message": "Rate limit exceeded. Please try again later."}}
    assert limited.headers["X-RateLimit-Remaining"] == "0" and "Retry-After" not in limited.headers
    token = requests.post(url + "/oauth/token", json={"grant_type": "client_credentials"}, auth=BP_CLIENT, timeout=5)
    assert token.status_code == 429  # the token endpoint counts too
    for _ in range(5):  # admin endpoints are exempt
        assert requests.get(url + "/_admin/stats", timeout=5).status_code == 200
    admin(url, "/rate-limit", {"limit": 0})
    assert requests.get(photos, headers=headers, timeout=5).status_code == 200
    admin(url, "/faults", {"script": [{"route": "photos-list", "fault": "rate_limit"}]})
    faulted = requests.get(photos, headers=headers, timeout=5)
    assert faulted.status_code == 429 and faulted.headers["X-RateLimit-Remaining"] == "0"
    # the limit's own 429s are counted, the scripted one is not
    assert admin(url, "/stats", method="GET")["events"]["rate_limited"] == 3


def test_bulk_upload_validates_every_part(box: sandbox.Sandbox) -> None:
    headers = bp_headers(box)
    response = bulk_upload(box, headers, [jpeg("a"), PNG, jpeg("c", 100_000)])
    assert response.status_code == 201, response.text
    uploads = response.json()["uploads"]
    assert [u["fileName"] for u in uploads] == ["photo0.jpg", "photo1.jpg", "photo2.jpg"]
    assert all(u["type"] == "attachment" and u["regionId"] == "au1" and u["key"] for u in uploads)
    empty = bulk_upload(box, headers, [jpeg("a"), b""])
    assert empty.status_code == 400 and "file:1" in empty.json()["error"]["message"]
    text = bulk_upload(box, headers, [b"hello, not an image", jpeg("b")])
    assert text.status_code == 400 and "file:0" in text.json()["error"]["message"]
    attachments = requests.get(box.buildpass_url + "/_admin/attachments", timeout=5).json()["attachments"]
    assert len(attachments) == 3  # the rejected requests stored nothing
    assert (
        attachments[2]["sha256"] == hashlib.sha256(jpeg("c", 100_000)).hexdigest() and attachments[2]["size"] == 100_000
    )
    body, ctype = multipart([("type", "attachment"), ("file", ("one.jpg", jpeg("d"), "image/jpeg"))])
    single = requests.post(
        f"{box.buildpass_url}/builders/{BUILDER}/attachments/upload",
        data=body,
        headers={**headers, "Content-Type": ctype, "X-BuildPass-Region-Id": "us1"},
        timeout=5,
    )
    assert (
        single.status_code == 201
        and single.json()["regionId"] == "us1"
        and single.json()["contentType"] == "image/jpeg"
    )
    not_multipart = requests.post(
        f"{box.buildpass_url}/builders/{BUILDER}/attachments/upload", data=b"x", headers=headers, timeout=5
    )
    assert not_multipart.status_code == 400


def test_large_streamed_upload_is_hashed_not_kept(box: sandbox.Sandbox) -> None:
    size = 30_000_000
    boundary = "----streamed-" + "x" * 40
    head = (
        f'preamble\r\n--{boundary}\r\nContent-Disposition: form-data; name="type:0"\r\n\r\nattachment\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file:0"; filename="big.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\nepilogue".encode()
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:  # no length: requests sends it chunked
        yield head
        for chunk in images.iter_jpeg("huge", size, chunk_size=1 << 20):
            digest.update(chunk)
            yield chunk
        yield tail

    response = requests.post(
        f"{box.buildpass_url}/builders/{BUILDER}/attachments/bulk-upload",
        data=body(),
        headers={**bp_headers(box), "Content-Type": f'multipart/form-data; boundary="{boundary}"'},
        timeout=60,
    )
    assert response.status_code == 201, response.text
    stored = requests.get(box.buildpass_url + "/_admin/attachments", timeout=5).json()["attachments"][0]
    assert stored["size"] == size and stored["sha256"] == digest.hexdigest()
    assert not any(isinstance(v, bytes) for a in box.buildpass.attachments.values() for v in a.values())


def test_multipart_parser_survives_any_read_boundaries() -> None:
    import random

    from sandbox.buildpass import boundary_of, parse_multipart

    files = [jpeg("m", 70_000), b"", b"--sbx-boundary-1 not after CRLF \r\n--sbx-boundary-", PNG]
    fields: list[tuple[str, str | tuple[str, bytes, str]]] = [("type:0", "attachment")]
    fields += [(f"file:{i}", (f"n;{i}.jpg", data, "image/jpeg")) for i, data in enumerate(files)]
    body, ctype = multipart(fields)

    class Trickle:
        def __init__(self, data: bytes, rng: random.Random) -> None:
            self.data, self.pos, self.rng = data, 0, rng

        def read(self, n: int) -> bytes:
            take = min(n, self.rng.randint(1, 97))
            out = self.data[self.pos : self.pos + take]
            self.pos += len(out)
            return out

        def drain(self) -> bool:
            self.pos = len(self.data)
            return True

    for trial in range(5):
        parts = parse_multipart(Trickle(body, random.Random(trial)), boundary_of(ctype))
        assert [p.name for p in parts] == ["type:0", "file:0", "file:1", "file:2", "file:3"]
        assert parts[0].text == "attachment" and parts[1].filename == "n;0.jpg"
        for part, data in zip(parts[1:], files, strict=True):
            assert part.size == len(data) and part.sha256 == hashlib.sha256(data).hexdigest()
            assert part.head == data[:64] and part.value == b""


def _upsert(box: sandbox.Sandbox, headers: dict[str, str], photos: list[dict], **extra: object) -> requests.Response:
    body = {
        "externalSourceId": "acc:" + PROJECT,
        "sourceApp": "acc-buildpass",
        "projectId": BP_PROJECT,
        "photos": photos,
    }
    body.update(extra)
    return requests.post(
        f"{box.buildpass_url}/builders/{BUILDER}/photo-gallery/bulk-upsert", json=body, headers=headers, timeout=5
    )


def test_bulk_upsert_is_idempotent_and_reports_failed_photos(box: sandbox.Sandbox) -> None:
    headers = bp_headers(box)
    keys = [u["key"] for u in bulk_upload(box, headers, [jpeg("a"), jpeg("b"), jpeg("c")]).json()["uploads"]]

    def entry(ext: str, key: str, **kw: object) -> dict:
        base = {"externalSourceId": ext, "fileName": f"{ext}.jpg", "contentType": "image/jpeg", "sequenceId": 1,
                "imageAttachment": {"key": key, "regionId": "au1", "type": "attachment"},
                "capturedAt": "2024-03-01T10:00:00Z"}  # fmt: skip
        base.update(kw)
        return base

    batch = [
        entry("p1", keys[0]),
        entry("p2", keys[1], capturedAt="2024-03-01T10:00:00"),  # no zone: refused
        entry("p3", "att_unknown"),
        entry("p4", keys[2], fileName="../../etc/passwd"),
        entry("p5", keys[2], fileName=""),
        entry("p1", keys[1]),  # repeated within the batch
    ]
    first = _upsert(box, headers, batch, folderName="Autodesk Construction Cloud")
    assert first.status_code == 200, first.text
    result = first.json()
    assert len(result["createdAttachmentIds"]) == 1 and result["skippedExternalSourceIds"] == ["p1"]
    assert {f["externalSourceId"] for f in result["failedPhotos"]} == {"p2", "p3", "p4", "p5"}
    assert all(f["error"] for f in result["failedPhotos"])
    again = _upsert(
        box, headers, [entry("p1", keys[0]), entry("p2", keys[1])], folderName="Autodesk Construction Cloud"
    )
    assert again.json()["skippedExternalSourceIds"] == ["p1"] and len(again.json()["createdAttachmentIds"]) == 1
    assert again.json()["folderId"] != result["folderId"]  # no folderId: a new folder every call
    same = _upsert(box, headers, [entry("p9", keys[2])], folderId=result["folderId"])
    assert same.json()["folderId"] == result["folderId"]
    assert _upsert(box, headers, [], folderId="fold_nope").status_code == 404
    assert _upsert(box, headers, [], projectId="proj_nope", folderName="x").status_code == 400
    truth = requests.get(f"{box.buildpass_url}/_admin/photos?builder_id={BUILDER}", timeout=5).json()["photos"]
    assert sorted(p["externalSourceId"] for p in truth) == ["p1", "p2", "p9"]
    p1 = next(p for p in truth if p["externalSourceId"] == "p1")
    assert p1["createdVia"] == "bulk-upsert" and p1["sha256"] == hashlib.sha256(jpeg("a")).hexdigest()
    assert p1["capturedAt"].startswith("2024-03-01T10:00:00") and p1["archivedAt"] is None
    listed = requests.get(
        f"{box.buildpass_url}/builders/{BUILDER}/photos", params={"projectId": BP_PROJECT}, headers=headers, timeout=5
    )
    assert len(listed.json()["data"]) == 3 and all("externalSourceId" not in p for p in listed.json()["data"])
    folders = requests.get(
        f"{box.buildpass_url}/builders/{BUILDER}/photo-folders",
        params={"projectId": BP_PROJECT},
        headers=headers,
        timeout=5,
    )
    assert len(folders.json()["data"]) == 2


def test_create_photo_makes_duplicates_and_lost_response_still_creates(box: sandbox.Sandbox) -> None:
    headers = bp_headers(box)
    key = bulk_upload(box, headers, [jpeg("a")]).json()["uploads"][0]["key"]
    body = {
        "fileName": "slab.jpg",
        "projectId": BP_PROJECT,
        "imageAttachment": {"key": key, "regionId": "au1", "type": "attachment"},
        "contentType": "image/jpeg",
        "capturedAt": "2024-03-01T10:00:00.250Z",
        "externalSourceId": "acc-1",
        "description": "Level 3 slab pour",
    }
    url = f"{box.buildpass_url}/builders/{BUILDER}/photos"
    first = requests.post(url, json=body, headers=headers, timeout=5)
    assert first.status_code == 201, first.text
    photo = first.json()
    assert photo["fileSize"] == str(len(jpeg("a"))) and photo["key"] == key and "externalSourceId" not in photo
    assert photo["photoTakenDate"] == "2024-03-01T10:00:00.250Z" and photo["archivedAt"] is None
    second = requests.post(url, json=body, headers=headers, timeout=5)
    assert second.status_code == 201 and second.json()["id"] != photo["id"]
    admin(box.buildpass_url, "/faults", {"script": [{"route": "photos-create", "fault": "lost_response"}]})
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url, json=body, headers=headers, timeout=5)
    admin(box.buildpass_url, "/faults", {"script": [{"route": "photos-create", "fault": "reset"}]})
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url, json=body, headers=headers, timeout=5)
    admin(box.buildpass_url, "/faults", {"script": [{"route": "photos-create", "fault": "error5xx"}]})
    assert requests.post(url, json=body, headers=headers, timeout=5).status_code >= 500
    truth = requests.get(f"{box.buildpass_url}/_admin/photos", params={"builder_id": BUILDER}, timeout=5).json()[
        "photos"
    ]
    assert [p["externalSourceId"] for p in truth] == ["acc-1"] * 3  # two answered, one whose answer was lost
    assert all(p["createdVia"] == "photos" for p in truth)
    for change, status in (
        ({"fileName": None}, 400),
        ({"projectId": "proj_nope"}, 400),
        ({"imageAttachment": {"key": "att_nope"}}, 400),
        ({"imageAttachment": None, "imageUrl": "https://s3.amazonaws.com/x.jpg"}, 400),
        ({"capturedAt": "yesterday"}, 400),
        ({"folderId": "fold_nope"}, 400),
    ):
        assert requests.post(url, json={**body, **change}, headers=headers, timeout=5).status_code == status, change
    got = requests.get(f"{url}/{photo['id']}", headers=headers, timeout=5)
    assert got.json()["id"] == photo["id"]
    patched = requests.patch(f"{url}/{photo['id']}", json={"description": "new"}, headers=headers, timeout=5)
    assert patched.json()["description"] == "new"
    assert requests.get(f"{url}/phot_nope", headers=headers, timeout=5).status_code == 404


def test_truncated_read_and_folders(box: sandbox.Sandbox) -> None:
    headers = bp_headers(box)
    folders = f"{box.buildpass_url}/builders/{BUILDER}/photo-folders"
    created = requests.post(folders, json={"name": "ACC", "projectId": BP_PROJECT}, headers=headers, timeout=5)
    assert created.status_code == 201
    folder = created.json()
    assert (
        requests.post(folders, json={"name": "x", "projectId": "proj_nope"}, headers=headers, timeout=5).status_code
        == 404
    )
    assert requests.get(folders, params={"projectId": "proj_nope"}, headers=headers, timeout=5).status_code == 404
    assert requests.get(f"{folders}/{folder['id']}", headers=headers, timeout=5).json()["name"] == "ACC"
    renamed = requests.patch(f"{folders}/{folder['id']}", json={"name": "ACC photos"}, headers=headers, timeout=5)
    assert renamed.json()["name"] == "ACC photos"
    key = bulk_upload(box, headers, [jpeg("a")]).json()["uploads"][0]["key"]
    photo = {"externalSourceId": "e1", "fileName": "a.jpg", "imageAttachment": {"key": key}}
    assert _upsert(box, headers, [photo], folderId=folder["id"]).status_code == 200
    assert requests.delete(f"{folders}/{folder['id']}", headers=headers, timeout=5).status_code == 409
    admin(box.buildpass_url, "/faults", {"script": [{"route": "folders", "fault": "truncate"}]})
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
        requests.get(folders, params={"projectId": BP_PROJECT}, headers=headers, timeout=5)
    archived = requests.delete(
        f"{box.buildpass_url}/builders/{BUILDER}/photo-gallery/bulk-upsert",
        json={"externalSourceId": "acc:" + PROJECT, "projectId": BP_PROJECT},
        headers=headers,
        timeout=5,
    )
    assert len(archived.json()["archivedPhotoIds"]) == 1
    assert requests.delete(f"{folders}/{folder['id']}", headers=headers, timeout=5).status_code == 204
    assert requests.get(f"{folders}/{folder['id']}", headers=headers, timeout=5).status_code == 404
    stats = requests.get(box.buildpass_url + "/_admin/stats", timeout=5).json()
    assert stats["requests"]["folders"] >= 4 and stats["total"] == sum(stats["requests"].values())


# -- process -----------------------------------------------------------------------------------


def test_command_line_writes_ready_file_and_stops_on_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "include")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--acc-port",
            "0",
            "--buildpass-port",
            "0",
            "--ready-file",
            str(ready),
            "--seed",
            "3",
        ],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        urls = json.loads(line)
        assert json.loads(ready.read_text()) == urls
        assert requests.get(urls["acc_url"] + "/_admin/stats", timeout=5).json()["total"] == 0
        assert requests.get(urls["buildpass_url"] + "/_admin/faults", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


# -- BuildPass reject rule ---------------------------------------------------------------------


def test_reject_rule_refuses_one_photo_as_a_validation_error(box: sandbox.Sandbox) -> None:
    headers = bp_headers(box)
    keys = [u["key"] for u in bulk_upload(box, headers, [jpeg("a"), jpeg("b"), jpeg("c")]).json()["uploads"]]
    url = box.buildpass_url

    def entry(ext: str, key: str) -> dict:
        return {"externalSourceId": ext, "fileName": f"{ext}.jpg", "capturedAt": "2024-03-01T10:00:00Z",
                "imageAttachment": {"key": key, "regionId": "au1", "type": "attachment"}}  # fmt: skip

    rules = admin(url, "/reject", {"externalSourceId": "r2", "message": "Image resolution is too low"})
    assert rules == {"rejects": {"r2": "Image resolution is too low"}}
    admin(url, "/reject", {"externalSourceId": "r9"})  # the message has a default
    assert admin(url, "/reject", method="GET")["rejects"] == {
        "r2": "Image resolution is too low",
        "r9": "photo failed validation",
    }
    for bad in ({}, {"externalSourceId": ""}, {"externalSourceId": "x", "message": 3}, [1]):
        assert requests.post(url + "/_admin/reject", json=bad, timeout=5).status_code == 400, bad

    # bulk-upsert: the rejected photo fails with the message, the others of the call land
    result = _upsert(box, headers, [entry("r1", keys[0]), entry("r2", keys[1]), entry("r3", keys[2])], folderName="F")
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["failedPhotos"] == [{"externalSourceId": "r2", "error": "Image resolution is too low"}]
    assert len(body["createdAttachmentIds"]) == 2 and body["skippedExternalSourceIds"] == []

    # POST /photos: 400 in the BuildPass error shape, nothing created
    create = {**entry("r9", keys[1]), "projectId": BP_PROJECT}
    refused = requests.post(f"{url}/builders/{BUILDER}/photos", json=create, headers=headers, timeout=5)
    assert refused.status_code == 400
    assert refused.json() == {"error": {"message": "photo failed validation", "code": "invalid_request"}}
    truth = admin(url, f"/photos?builder_id={BUILDER}", method="GET")["photos"]
    assert sorted(p["externalSourceId"] for p in truth) == ["r1", "r3"]

    # clearing one rule, then all; the photo is accepted again
    assert admin(url, "/reject", {"externalSourceId": "r9", "clear": True}) == {
        "rejects": {"r2": "Image resolution is too low"}
    }
    assert requests.post(f"{url}/builders/{BUILDER}/photos", json=create, headers=headers, timeout=5).status_code == 201
    assert admin(url, "/reject", {"clear": True}) == {"rejects": {}}
    again = _upsert(box, headers, [entry("r1", keys[0]), entry("r2", keys[1])], folderName="F").json()
    assert again["failedPhotos"] == [] and again["skippedExternalSourceIds"] == ["r1"]
    assert len(again["createdAttachmentIds"]) == 1

    # reset forgets the rules too
    admin(url, "/reject", {"externalSourceId": "r4", "message": "nope"})
    admin(url, "/reset")
    assert admin(url, "/reject", method="GET") == {"rejects": {}}


# -- answers (/_admin/answers) ---------------------------------------------------------------


def test_acc_answers_default_to_today_and_are_set_by_name_or_preset_and_reset(box: sandbox.Sandbox) -> None:
    defaults = {"size": "true", "media_type": "listed", "signed_url_clock": "same", "cursor": "keeps"}
    assert admin(box.acc_url, "/answers", method="GET") == defaults
    assert admin(box.acc_url, "/answers", {"size": "zero"}) == {**defaults, "size": "zero"}
    assert admin(box.acc_url, "/answers", {"cursor": "breaks"})["size"] == "zero"  # applied over the current ones
    worst = {"size": "mixed", "media_type": "novel", "signed_url_clock": "ahead", "cursor": "breaks"}
    assert admin(box.acc_url, "/answers", {"preset": "worst"}) == worst
    assert admin(box.acc_url, "/answers", {"preset": "worst", "size": "absent"})["size"] == "absent"
    for bad in ({"sizes": "zero"}, {"size": "huge"}, {"preset": "bad"}, ["size"]):
        response = requests.post(box.acc_url + "/_admin/answers", json=bad, timeout=5)
        assert response.status_code == 400 and response.json()["error"]
    assert admin(box.acc_url, "/answers", method="GET")["size"] == "absent"  # a refused body changes nothing
    admin(box.acc_url, "/reset", {})
    assert admin(box.acc_url, "/answers", method="GET") == defaults


@pytest.mark.parametrize(("answer", "said"), [("true", "bytes"), ("zero", 0), ("absent", None)])
def test_acc_size_answer_makes_records_lie_but_not_the_bytes(box: sandbox.Sandbox, answer: str, said: object) -> None:
    seed(box, 3)
    admin(box.acc_url, "/answers", {"size": answer})
    truth = {p["id"]: p for p in admin(box.acc_url, f"/photos?project_id={PROJECT}", method="GET")["photos"]}
    served = all_pages(box, acc_headers(box), {"include": ["signedUrls"]})
    for record in served:
        assert record.get("size") == (truth[record["id"]]["size"] if said == "bytes" else said)
        assert ("size" in record) is (answer != "absent")
        file = requests.get(record["signedUrls"]["fileUrl"], timeout=10)
        assert len(file.content) == int(file.headers["Content-Length"]) == truth[record["id"]]["size"]


def test_acc_novel_media_type_answer_serves_types_not_listed_today(box: sandbox.Sandbox) -> None:
    seed(box, 40)
    headers = acc_headers(box)
    assert {p["mediaType"] for p in all_pages(box, headers, {})} == {"NORMAL"}
    admin(box.acc_url, "/answers", {"media_type": "novel"})
    served = {p["id"]: p["mediaType"] for p in all_pages(box, headers, {})}
    novel = {i for i, m in served.items() if m != "NORMAL"}
    assert novel and set(served.values()) - {"NORMAL"} <= {"PANORAMA", "DRONE_ORTHO"} and len(novel) < 40
    truth = admin(box.acc_url, f"/photos?project_id={PROJECT}", method="GET")["photos"]
    assert {p["id"]: p["mediaType"] for p in truth} == served  # the truth sees them as served
    only = all_pages(box, headers, {"filter": {"mediaType": ["PANORAMA", "DRONE_ORTHO"]}})
    assert {p["id"] for p in only} == novel


def test_acc_storage_clock_ahead_refuses_a_url_before_its_stated_expiry_and_counts_it(box: sandbox.Sandbox) -> None:
    seed(box, 1)
    admin(box.acc_url, "/faults", {"signed_url_ttl": 10})
    url = all_pages(box, acc_headers(box), {"include": ["signedUrls"]})[0]["signedUrls"]["fileUrl"]
    admin(box.acc_url, "/clock", {"advance_seconds": 8.5})  # 1.5 s or less before X-Amz-Date + X-Amz-Expires
    assert requests.get(url, timeout=10).status_code == 200
    admin(box.acc_url, "/answers", {"signed_url_clock": "ahead"})
    refused = requests.get(url, timeout=10)
    assert refused.status_code == 403 and b"Request has expired" in refused.content
    assert admin(box.acc_url, "/stats", method="GET")["events"] == {"expired_url_refused": 1}


def test_acc_cursor_answer_refuses_every_second_next_post(box: sandbox.Sandbox) -> None:
    seed(box, 120)
    admin(box.acc_url, "/answers", {"cursor": "breaks"})
    headers = acc_headers(box)
    first = requests.post(filter_url(box), json={"limit": 20}, headers=headers, timeout=10).json()
    second = requests.post(filter_url(box), json=first["pagination"]["nextPost"]["body"], headers=headers, timeout=10)
    assert second.status_code == 200  # the first cursor works
    third = requests.post(
        filter_url(box), json=second.json()["pagination"]["nextPost"]["body"], headers=headers, timeout=10
    )
    assert third.status_code == 400 and "cursorState" in third.json()["developerMessage"]
    assert admin(box.acc_url, "/stats", method="GET")["events"] == {"cursor_refused": 1}


# -- BuildPass answers ---------------------------------------------------------------------------

BP_DEFAULTS = {
    "limits": "none",
    "upload_order": "index",
    "token_api_version": "optional",
    "created_ids": "photo_ids",
    "upsert_reply": "complete",
}


def _entry(ext: str, key: str) -> dict:
    return {
        "externalSourceId": ext,
        "fileName": f"{ext}.jpg",
        "imageAttachment": {"key": key, "regionId": "au1", "type": "attachment"},
    }


def test_buildpass_answers_default_to_today_and_the_worst_preset_sets_each(box: sandbox.Sandbox) -> None:
    current = admin(box.buildpass_url, "/answers", method="GET")
    assert {k: current[k] for k in BP_DEFAULTS} == BP_DEFAULTS
    worst = admin(box.buildpass_url, "/answers", {"preset": "worst"})
    assert {k: worst[k] for k in BP_DEFAULTS} == {
        "limits": "tight",
        "upload_order": "shuffled",
        "token_api_version": "required",
        "created_ids": "absent",
        "upsert_reply": "partial",
    }
    for bad in ({"limits": "loose"}, {"upload_order": "reversed"}, {"created_ids": ""}):
        assert requests.post(box.buildpass_url + "/_admin/answers", json=bad, timeout=5).status_code == 400
    admin(box.buildpass_url, "/reset", {})
    assert {k: admin(box.buildpass_url, "/answers", method="GET")[k] for k in BP_DEFAULTS} == BP_DEFAULTS


def test_buildpass_token_api_version_answer_refuses_a_token_call_without_the_header(box: sandbox.Sandbox) -> None:
    bp_token(box)  # today: no header needed
    admin(box.buildpass_url, "/answers", {"token_api_version": "required"})
    body = {"grant_type": "client_credentials", "client_id": BP_CLIENT[0], "client_secret": BP_CLIENT[1]}
    refused = requests.post(box.buildpass_url + "/oauth/token", json=body, timeout=5)
    assert refused.status_code == 400 and "X-BuildPass-Api-Version" in refused.json()["error"]["message"]
    version = {"X-BuildPass-Api-Version": "v1"}
    sent = requests.post(box.buildpass_url + "/oauth/token", json=body, headers=version, timeout=5)
    assert sent.status_code == 200 and sent.json()["access_token"]


def test_buildpass_tight_limits_refuse_requests_over_them_as_a_whole(box: sandbox.Sandbox) -> None:
    headers = bp_headers(box)
    admin(box.buildpass_url, "/answers", {"limits": "tight"})
    over = bulk_upload(box, headers, [jpeg(f"f{i}") for i in range(11)])
    assert over.status_code == 400 and over.json()["error"]["message"] == "Too many files in one request"
    assert bulk_upload(box, headers, [jpeg(f"f{i}") for i in range(10)]).status_code == 201
    heavy = bulk_upload(box, headers, [jpeg(f"h{i}", 1_500_000) for i in range(3)])  # over 4 MiB
    assert heavy.status_code == 413
    assert len(admin(box.buildpass_url, "/attachments?builder_id=buil_demo", method="GET")["attachments"]) == 10
    key = bulk_upload(box, headers, [jpeg("k")]).json()["uploads"][0]["key"]
    many = _upsert(box, headers, [_entry(f"p{i}", key) for i in range(21)], folderName="ACC")
    assert many.status_code == 400 and many.json()["error"]["message"] == "Too many photos in one request"
    assert admin(box.buildpass_url, "/folders?builder_id=buil_demo", method="GET")["folders"] == []  # nothing made
    assert _upsert(box, headers, [_entry(f"p{i}", key) for i in range(20)], folderName="ACC").status_code == 200


@pytest.mark.parametrize("order", ["index", "unnamed", "shuffled"])
def test_buildpass_upload_order_answer(box: sandbox.Sandbox, order: str) -> None:
    headers = bp_headers(box)
    admin(box.buildpass_url, "/answers", {"upload_order": order})
    files = [jpeg(f"o{i}", 2000 + i) for i in range(6)]
    uploads = bulk_upload(box, headers, files).json()["uploads"]
    shas = {a["key"]: a["sha256"] for a in admin(box.buildpass_url, "/attachments", method="GET")["attachments"]}
    served = [hashlib.sha256(f).hexdigest() for f in files]
    if order == "unnamed":
        assert all("fileName" not in u for u in uploads) and [shas[u["key"]] for u in uploads] == served
    else:
        names = [u["fileName"] for u in uploads]
        assert sorted(names) == [f"photo{i}.jpg" for i in range(6)]
        assert (names == sorted(names)) is (order == "index")
        assert all(shas[u["key"]] == served[int(u["fileName"][5])] for u in uploads)  # each names its own file


def test_buildpass_created_ids_and_partial_reply_answers(box: sandbox.Sandbox) -> None:
    headers = bp_headers(box)
    keys = [u["key"] for u in bulk_upload(box, headers, [jpeg(f"c{i}") for i in range(5)]).json()["uploads"]]
    admin(box.buildpass_url, "/answers", {"created_ids": "attachment_keys"})
    reply = _upsert(box, headers, [_entry("c0", keys[0])], folderName="ACC").json()
    assert reply["createdAttachmentIds"] == [keys[0]]
    admin(box.buildpass_url, "/answers", {"created_ids": "absent"})
    assert "createdAttachmentIds" not in _upsert(box, headers, [_entry("c1", keys[1])], folderName="ACC").json()
    admin(box.buildpass_url, "/answers", {"created_ids": "attachment_keys", "upsert_reply": "partial"})
    batch = [_entry(f"c{i}", keys[i]) for i in (2, 3, 4)]
    partial = _upsert(box, headers, batch, folderName="ACC").json()
    made = {p["externalSourceId"] for p in admin(box.buildpass_url, "/photos", method="GET")["photos"]}
    assert made == {"c0", "c1", "c2", "c3"}  # c4 dropped: not created...
    assert partial["createdAttachmentIds"] == [keys[2]] and partial["failedPhotos"] == []  # ...nor named; c3 left out
    again = _upsert(box, headers, batch, folderName="ACC").json()  # a photo is dropped once only
    assert again["skippedExternalSourceIds"] == ["c2", "c3"] and again["createdAttachmentIds"] == [keys[4]]
