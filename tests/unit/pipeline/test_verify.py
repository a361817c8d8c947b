"""verify against both emulators and an in-memory S3: a window copied by the real steps (extract,
stage, publish), then BuildPass read back and each eligible ACC photo reconciled."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import requests
import sandbox
from acc_buildpass.clients.buildpass import BuildPassPhoto
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ConfigError
from acc_buildpass.pipeline import extract as extract_step
from acc_buildpass.pipeline import verify as verify_step
from acc_buildpass.pipeline.publish import publish_batch
from acc_buildpass.pipeline.stage import stage_batch
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3
from tests.unit.pipeline.emulated import (
    PROJECT,
    WINDOW,
    acc_client,
    acc_truth,
    admin,
    buildpass_client,
    pipeline_config,
    route_counts,
)

COPIED = ("NORMAL", "INFRARED", "PHOTOSPHERE")


def copied(box: sandbox.Sandbox, tmp_path: Path, count: int = 6, **config: Any) -> tuple[Store, PipelineConfig]:
    """``count`` photos seeded in ACC (one VIDEO, one deleted: not eligible) and the window copied
    by the DAG's steps: (the store, the configuration)."""
    acc, bp, cfg = acc_client(box, tmp_path), buildpass_client(box), pipeline_config(**config)
    store = Store(MemoryS3(), Layout("staging", "t"))
    body = {"project_id": PROJECT, "count": count, "videos": 1, "deleted": 1, "start": "2024-01-01T00:00:00"}
    admin(box.acc_url, "/seed", body)
    for batch in extract_step.extract(acc, bp, store, cfg, WINDOW):
        outcomes = stage_batch(acc, store, cfg, batch)
        store.put_json(store.layout.batch_outcome(WINDOW, batch.index, "stage"), outcomes)
        publish_batch(bp, store, cfg, batch)
    return store, cfg


def run_verify(box: sandbox.Sandbox, tmp_path: Path, store: Store, config: PipelineConfig) -> dict[str, Any]:
    return verify_step.verify(acc_client(box, tmp_path), buildpass_client(box), store, config, WINDOW)


def eligible(box: sandbox.Sandbox) -> list[str]:
    return [i for i, p in acc_truth(box).items() if p["mediaType"] in COPIED and not p.get("deletedAt")]


def in_buildpass(box: sandbox.Sandbox) -> dict[str, dict[str, Any]]:
    """BuildPass's photos by externalSourceId (the emulator's ground truth)."""
    return {p["externalSourceId"]: p for p in admin(box.buildpass_url, "/photos?builder_id=buil_demo")["photos"]}


def problems(result: dict[str, Any], problem: str) -> dict[str, dict[str, Any]]:
    return {f["photo_id"]: f for f in result["findings"] if f["problem"] == problem}


def bp_call(box: sandbox.Sandbox, method: str, path: str, **kwargs: Any) -> Any:
    """A BuildPass call as a user (or another tool) would make it."""
    token = requests.post(
        box.buildpass_url + "/oauth/token",
        json={"grant_type": "client_credentials", "client_id": "bp-demo-client", "client_secret": "bp-demo-secret"},
        headers={"X-BuildPass-Api-Version": "v1"},
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "X-BuildPass-Api-Version": "v1"}
    response = requests.request(method, box.buildpass_url + path, headers=headers, timeout=10, **kwargs)
    assert response.status_code in (200, 201), response.text
    return response.json()


def post_photo(box: sandbox.Sandbox, key: str, **fields: Any) -> dict[str, Any]:
    body = {"fileName": "again.jpg", "projectId": "proj_demo", "imageAttachment": {"key": key, "type": "attachment"}}
    return bp_call(box, "POST", "/builders/buil_demo/photos", json={**body, **fields})  # type: ignore[no-any-return]


def upload(box: sandbox.Sandbox, size: int = 3000) -> str:
    jpeg = base64.b64decode(base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * size + b"\xff\xd9"))
    files = {"file": ("x.jpg", jpeg, "image/jpeg")}
    return bp_call(box, "POST", "/builders/buil_demo/attachments/upload", files=files, data={"type": "attachment"})[  # type: ignore[no-any-return]
        "key"
    ]


@pytest.mark.parametrize("mode", ["bulk", "single"])
def test_a_clean_copy_verifies_and_costs_one_listing_a_project(box: sandbox.Sandbox, tmp_path: Path, mode: str) -> None:
    store, config = copied(box, tmp_path, publish_mode=mode)
    admin(box.acc_url, "/stats/reset", {})
    admin(box.buildpass_url, "/stats/reset", {})
    result = run_verify(box, tmp_path, store, config)

    assert result["ok"] and verify_step.verify_ok(result) and result["findings"] == []
    assert result["totals"] == {
        "listed": 6,
        "eligible": 4,
        "confirmed": 4,
        "absent": 0,
        "doubled": 0,
        "wrong_size": 0,
        "unlinked": 0,
        "not_linkable": 0,
        "listing_incomplete": 0,
    }
    # What it cost: one ACC page, one BuildPass listing, one ledger listing and a read a copied
    # photo (BuildPass returns no externalSourceId today); nothing written but verify.json.
    assert result["cost"] == {
        "acc_pages": 1,
        "buildpass_listings": 1,
        "ledger_listings": 1,
        "ledger_reads": 4,
        "staged_heads": 0,
    }
    assert {k: v for k, v in route_counts(box.acc_url).items() if k != "token"} == {"photos:filter": 1}
    assert {k: v for k, v in route_counts(box.buildpass_url).items() if k != "token"} == {"photos-list": 1}
    assert store.get_json(store.layout.verify_report(WINDOW)) == result


def test_absent_photos_say_why(box: sandbox.Sandbox, tmp_path: Path) -> None:
    store, config = copied(box, tmp_path)
    later = admin(box.acc_url, "/seed", {"project_id": PROJECT, "count": 1, "start": "2024-01-20T00:00:00"})["ids"]
    result = run_verify(box, tmp_path, store, config)
    assert set(problems(result, "absent")) == set(later)
    assert "never copied" in problems(result, "absent")[later[0]]["reason"]
    assert not result["ok"] and result["totals"]["confirmed"] == 4

    # Archived in BuildPass (the bulk-upsert DELETE of our source): the ledger says created, BuildPass has none.
    bp_call(
        box,
        "DELETE",
        "/builders/buil_demo/photo-gallery/bulk-upsert",
        json={"externalSourceId": f"acc:{PROJECT}", "projectId": "proj_demo"},
    )
    result = run_verify(box, tmp_path, store, config)
    absent = problems(result, "absent")
    assert set(absent) == {*eligible(box)} and result["totals"]["confirmed"] == 0
    assert all("BuildPass lists no such photo" in absent[i]["reason"] for i in eligible(box) if i not in later)


def test_a_doubled_photo_is_found_by_its_attachment_key_and_by_its_external_id(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config = copied(box, tmp_path)
    first, second = eligible(box)[:2]
    made = in_buildpass(box)
    # A create replayed with the attachment our ledger recorded.
    again = post_photo(box, made[first]["key"])
    # A second copy by another tool, with its own upload, naming the ACC photo.
    other = post_photo(box, upload(box), externalSourceId=second)

    result = run_verify(box, tmp_path, store, config)
    doubled = problems(result, "doubled")
    assert set(doubled) == {first}  # BuildPass returns no externalSourceId: the other copy is not linkable
    assert set(doubled[first]["buildpass_photo_ids"]) == {made[first]["id"], again["id"]}

    admin(box.buildpass_url, "/answers", {"external_source_id": "metadata"})
    result = run_verify(box, tmp_path, store, config)
    doubled = problems(result, "doubled")
    assert set(doubled) == {first, second}
    assert set(doubled[second]["buildpass_photo_ids"]) == {made[second]["id"], other["id"]}
    assert result["cost"]["ledger_reads"] == 0  # every photo linked by its externalSourceId


def test_a_wrong_size_is_reported_and_a_zero_acc_size_is_checked_against_the_staged_bytes(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config = copied(box, tmp_path)
    liar, unsized = eligible(box)[:2]
    made = in_buildpass(box)
    requests.patch(f"{box.acc_url}/_admin/photos/{liar}", json={"size": 7}, timeout=10).raise_for_status()
    requests.patch(f"{box.acc_url}/_admin/photos/{unsized}", json={"size": 0}, timeout=10).raise_for_status()
    result = run_verify(box, tmp_path, store, config)
    wrong = problems(result, "wrong_size")
    assert set(wrong) == {liar} and wrong[liar]["buildpass_photo_ids"] == [made[liar]["id"]]
    assert f"has {made[liar]['size']}" in wrong[liar]["reason"]
    assert result["totals"]["confirmed"] == 3 and result["cost"]["staged_heads"] == 1


def test_a_photo_deleted_in_acc_after_its_copy_is_unlinked_and_other_windows_are_not_judged(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config = copied(box, tmp_path)
    gone = eligible(box)[0]
    made = in_buildpass(box)
    admin(box.acc_url, f"/photos/{gone}/delete", {})
    post_photo(box, upload(box), fileName="by hand.jpg")  # nothing ties it to the window: not judged

    result = run_verify(box, tmp_path, store, config)
    unlinked = problems(result, "unlinked")
    assert set(unlinked) == {gone} and unlinked[gone]["buildpass_photo_ids"] == [made[gone]["id"]]
    assert "deleted in ACC" in unlinked[gone]["reason"]
    assert result["totals"]["absent"] == 0 and result["totals"]["confirmed"] == 3
    assert result["projects"][0]["not_of_this_window"] == 1


def test_a_photo_moved_to_another_folder_is_still_found(box: sandbox.Sandbox, tmp_path: Path) -> None:
    store, config = copied(box, tmp_path)
    moved = in_buildpass(box)[eligible(box)[0]]
    folder = bp_call(
        box, "POST", "/builders/buil_demo/photo-folders", json={"name": "Sorted", "projectId": "proj_demo"}
    )
    bp_call(box, "PATCH", f"/builders/buil_demo/photos/{moved['id']}", json={"folderId": folder["id"]})
    result = run_verify(box, tmp_path, store, config)
    assert result["ok"] and result["totals"]["confirmed"] == 4


@pytest.mark.parametrize(("answer", "hint"), [("capped", "round number"), ("paged", "reply key 'next'")])
def test_a_listing_that_looks_capped_is_possibly_incomplete(
    box: sandbox.Sandbox, tmp_path: Path, answer: str, hint: str
) -> None:
    key = upload(box)
    others = [
        {"externalSourceId": f"other-{n}", "fileName": f"o{n}.jpg", "imageAttachment": {"key": key}} for n in range(100)
    ]
    bp_call(
        box,
        "POST",
        "/builders/buil_demo/photo-gallery/bulk-upsert",
        json={
            "externalSourceId": "another-tool",
            "sourceApp": "x",
            "projectId": "proj_demo",
            "folderName": "X",
            "photos": others,
        },
    )
    store, config = copied(box, tmp_path)
    admin(box.buildpass_url, "/answers", {"listing": answer})
    result = run_verify(box, tmp_path, store, config)
    project = result["projects"][0]
    assert hint in project["listing_incomplete"] and result["totals"]["listing_incomplete"] == 1
    assert project["buildpass_listed"] == 100 and not result["ok"]
    assert result["totals"]["absent"] == 4  # ours were created after the first 100: not in the listing


def test_listing_incomplete_reads_hints_and_round_counts() -> None:
    photos = [BuildPassPhoto(f"p{n}", None, None, "", None, None, None, None) for n in range(100)]
    assert verify_step.listing_incomplete(photos[:99], None) is None
    assert "round number" in str(verify_step.listing_incomplete(photos, None))
    assert "reply key 'nextCursor'" in str(verify_step.listing_incomplete(photos[:3], "reply key 'nextCursor'"))


def test_an_unknown_buildpass_project_is_a_configuration_error(box: sandbox.Sandbox, tmp_path: Path) -> None:
    config = pipeline_config(
        projects=[{"acc_project_id": PROJECT, "builder_id": "buil_demo", "buildpass_project_id": "proj_nope"}]
    )
    admin(box.acc_url, "/seed", {"project_id": PROJECT, "count": 1})
    with pytest.raises(ConfigError, match="proj_nope"):
        run_verify(box, tmp_path, Store(MemoryS3(), Layout("staging", "t")), config)
