"""The publish step against the BuildPass emulator (real uploads, the upsert's idempotency, a
refused upload), from photos staged by the stage step from the ACC emulator into an in-memory S3."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import sandbox
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.clients.multipart import FilePart
from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import AccPhoto, Batch, Outcome, PhotoStatus
from acc_buildpass.pipeline.publish import publish_batch
from acc_buildpass.pipeline.stage import stage_batch
from acc_buildpass.storage import Layout, Store
from sandbox import images

from tests.fakes import MemoryS3
from tests.unit.pipeline.emulated import (
    WINDOW,
    acc_client,
    acc_truth,
    admin,
    buildpass_client,
    pipeline_config,
    route_counts,
    seeded_batch,
)

Staged = tuple[Store, PipelineConfig, Batch, list[AccPhoto]]


def staged(box: sandbox.Sandbox, tmp_path: Path, count: int, **config: Any) -> Staged:
    """``count`` photos seeded in ACC and staged, their stage outcome written as the DAG's task does."""
    acc, store, cfg = acc_client(box, tmp_path), Store(MemoryS3(), Layout("staging", "t")), pipeline_config(**config)
    batch, photos, _ = seeded_batch(box, acc, store, cfg, count)
    store.put_json(store.layout.batch_outcome(WINDOW, batch.index, "stage"), stage_batch(acc, store, cfg, batch))
    return store, cfg, batch, photos


def in_buildpass(box: sandbox.Sandbox) -> list[dict[str, Any]]:
    return admin(box.buildpass_url, "/photos?builder_id=buil_demo")["photos"]  # type: ignore[no-any-return]


def ledger(store: Store, photo: AccPhoto) -> Any:
    return store.get_json(store.layout.ledger("buil_demo", "proj_demo", photo.id))


def test_bulk_creates_each_photo_once_and_a_retried_attempt_sends_only_what_the_ledger_lacks(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config, batch, photos = staged(box, tmp_path, 3)
    truth = acc_truth(box)
    outcomes = publish_batch(buildpass_client(box), store, config, batch)
    assert [(o.photo_id, o.status) for o in outcomes] == [(p.id, PhotoStatus.CREATED) for p in photos]
    made = {m["externalSourceId"]: m for m in in_buildpass(box)}
    assert len(in_buildpass(box)) == 3 and set(made) == {p.id for p in photos}
    assert all(
        made[p.id]["sha256"] == truth[p.id]["sha256"] and made[p.id]["createdVia"] == "bulk-upsert" for p in photos
    )
    for photo in photos:
        entry = ledger(store, photo)
        assert {k: entry[k] for k in ("state", "via", "sha256", "attachment_key", "window")} == {
            "state": "created",
            "via": "bulk-upsert",
            "sha256": truth[photo.id]["sha256"],
            "attachment_key": made[photo.id]["key"],  # what follow-edits links by
            "window": WINDOW.id,
        }

    # The outcome as the DAG's task writes it: the same keys and plain values as ever.
    key = store.layout.batch_outcome(WINDOW, batch.index, "publish")
    store.put_json(key, outcomes)
    written = json.loads(store.s3.objects[f"staging/{key}"].body)  # type: ignore[attr-defined]
    assert written[0] == {
        "photo_id": photos[0].id,
        "status": "created",
        "reason": "",
        "size": photos[0].size,
        "sha256": truth[photos[0].id]["sha256"],
        "content_type": None,
        "reused": False,
    }
    assert [Outcome.from_json(raw) for raw in written] == outcomes

    # A retried attempt whose predecessor died before recording the last photo.
    del store.s3.objects[f"staging/{store.layout.ledger('buil_demo', 'proj_demo', photos[2].id)}"]  # type: ignore[attr-defined]
    uploads = len(admin(box.buildpass_url, "/attachments?builder_id=buil_demo")["attachments"])
    again = publish_batch(buildpass_client(box), store, config, batch)
    assert [(o.photo_id, o.status) for o in again] == [(p.id, PhotoStatus.PRESENT) for p in photos]
    assert len(admin(box.buildpass_url, "/attachments?builder_id=buil_demo")["attachments"]) == uploads + 1
    assert len(in_buildpass(box)) == 3  # the upsert skipped the one sent again
    assert ledger(store, photos[2])["state"] == "created" and "attachment_key" not in ledger(store, photos[2])


def test_a_refused_bulk_upload_is_halved_down_to_the_bad_image(box: sandbox.Sandbox, tmp_path: Path) -> None:
    store, config, batch, photos = staged(box, tmp_path, 3)
    bad = photos[1]
    stored = store.s3.objects[f"staging/{store.layout.object_key(bad.project_id, bad.id)}"]  # type: ignore[attr-defined]
    stored.body = b"x" * len(stored.body)  # no longer an image: BuildPass refuses the whole request
    store = Store(store.s3, store.layout)  # a later task process: nothing staged is in its memory

    outcomes = {o.photo_id: o for o in publish_batch(buildpass_client(box), store, config, batch)}
    assert outcomes[bad.id].status == PhotoStatus.FAILED
    assert outcomes[bad.id].reason.startswith("BuildPass refused the image: ")
    assert [outcomes[p.id].status for p in (photos[0], photos[2])] == [PhotoStatus.CREATED] * 2
    # The refused chunk, its halves ([0] passes, [1, 2] is refused), then [1, 2] halved.
    assert route_counts(box.buildpass_url)["bulk-upload"] == 1 + 2 + 2
    assert sorted(m["externalSourceId"] for m in in_buildpass(box)) == sorted([photos[0].id, photos[2].id])
    assert ledger(store, bad) is None


def test_single_mode_creates_once_and_finds_a_photo_created_before_its_record(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config, batch, photos = staged(box, tmp_path, 2, publish_mode="single")
    outcomes = publish_batch(buildpass_client(box), store, config, batch)
    assert [(o.photo_id, o.status) for o in outcomes] == [(p.id, PhotoStatus.CREATED) for p in photos]
    made = {m["externalSourceId"]: m for m in in_buildpass(box)}
    assert [made[p.id]["createdVia"] for p in photos] == ["photos", "photos"]
    assert ledger(store, photos[0])["buildpass_photo_id"] == made[photos[0].id]["id"]

    # An attempt died between BuildPass's answer and the record: only the intent is in the ledger.
    intent = {"state": "intent", "attachment_keys": [made[photos[0].id]["key"]]}
    store.put_json(store.layout.ledger("buil_demo", "proj_demo", photos[0].id), intent)
    creates = route_counts(box.buildpass_url)["photos-create"]
    again = publish_batch(buildpass_client(box), store, config, batch)
    # The recorded photo first (the ledger settles it), then the one looked for in BuildPass.
    assert [(o.photo_id, o.status) for o in again] == [(p.id, PhotoStatus.PRESENT) for p in (photos[1], photos[0])]
    assert route_counts(box.buildpass_url)["photos-create"] == creates  # nothing created twice
    assert len(in_buildpass(box)) == 2
    assert ledger(store, photos[0])["state"] == "created"
    assert ledger(store, photos[0])["buildpass_photo_id"] == made[photos[0].id]["id"]


def assert_exactly_once_with_their_bytes(box: sandbox.Sandbox, photos: list[AccPhoto]) -> dict[str, dict[str, Any]]:
    truth = acc_truth(box)
    made = in_buildpass(box)
    assert sorted(m["externalSourceId"] for m in made) == sorted(p.id for p in photos)
    assert all(m["sha256"] == truth[m["externalSourceId"]]["sha256"] for m in made)
    return {m["externalSourceId"]: m for m in made}


def test_bulk_upload_answers_in_any_order_are_matched_to_their_files_by_name(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config, batch, photos = staged(box, tmp_path, 6)
    admin(box.buildpass_url, "/answers", {"upload_order": "shuffled"})
    outcomes = publish_batch(buildpass_client(box), store, config, batch)
    assert [o.status for o in outcomes] == [PhotoStatus.CREATED] * 6
    made = assert_exactly_once_with_their_bytes(box, photos)  # no photo got another's bytes
    uploads = admin(box.buildpass_url, "/attachments?builder_id=buil_demo")["attachments"]
    # Each part is named by its ACC photo id; the gallery's name is the upsert's.
    assert {u["key"]: u["fileName"] for u in uploads} == {made[p.id]["key"]: f"{p.id}.jpg" for p in photos}
    assert all(made[p.id]["fileName"] != f"{p.id}.jpg" for p in photos)


def test_limits_nobody_documented_are_found_by_halving_and_later_requests_start_at_the_size_that_passed(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    # At most 10 files per bulk-upload and 20 photos per bulk-upsert, refused with one message
    # whatever the size: "Too many files in one request" / "Too many photos in one request".
    store, config, batch, photos = staged(box, tmp_path, 50, upload_threads=1)
    admin(box.buildpass_url, "/answers", {"limits": "tight"})
    outcomes = publish_batch(buildpass_client(box), store, config, batch)
    assert [o.status for o in outcomes] == [PhotoStatus.CREATED] * 50
    assert_exactly_once_with_their_bytes(box, photos)
    counts = route_counts(box.buildpass_url)
    # Uploads of 25: 25 refused, 12 and 13 refused alike, one photo alone passes (so it is a
    # matter of size), then 11 -> 5 + 6 and 13 -> 6 + 7 pass; the second 25 go 7, 7, 7, 4.
    assert counts["bulk-upload"] == 9 + 4
    # Upserts: 50, 25 and 25, one alone, 24 -> 12 + 12, 25 -> 12 + 13.
    assert counts["bulk-upsert"] == 9
    # The replies name photo ids, as many as the photos they created: no listing is needed.
    assert counts.get("photos-list", 0) == 0


def test_a_request_refused_whatever_its_size_stops_being_split(box: sandbox.Sandbox, tmp_path: Path) -> None:
    store, config, batch, _ = staged(box, tmp_path, 8)
    wrong = replace(batch, buildpass_project_id="proj_gone")  # no such project in BuildPass
    outcomes = publish_batch(buildpass_client(box), store, config, wrong)
    assert [o.status for o in outcomes] == [PhotoStatus.FAILED] * 8
    assert all("is not a project of builder buil_demo" in o.reason for o in outcomes)
    assert route_counts(box.buildpass_url)["bulk-upsert"] == 1 + 2 + 1  # the 8, their halves, one alone
    assert in_buildpass(box) == []


def test_every_photo_is_accounted_for_when_the_upsert_reply_leaves_some_out(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    # The reply names attachment keys, but only every second photo it created; and it drops the
    # last photo without creating or naming it (once).
    store, config, batch, photos = staged(box, tmp_path, 6)
    admin(box.buildpass_url, "/answers", {"created_ids": "attachment_keys", "upsert_reply": "partial"})
    outcomes = publish_batch(buildpass_client(box), store, config, batch)
    made = assert_exactly_once_with_their_bytes(box, photos)  # the dropped one was sent again
    assert [(o.photo_id, o.status) for o in outcomes] == [(p.id, PhotoStatus.CREATED) for p in photos]
    for photo in photos:  # each recorded with the BuildPass photo it is, whichever way it was found
        assert ledger(store, photo)["attachment_key"] == made[photo.id]["key"]
    counts = route_counts(box.buildpass_url)
    assert (counts["bulk-upsert"], counts["photos-list"]) == (2, 1)


def test_a_photo_no_reply_accounts_for_and_no_listing_shows_fails_and_is_not_recorded(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config, batch, photos = staged(box, tmp_path, 4)
    # The reply names photo ids and drops the last photo; sending it again fails (5xx, every retry).
    admin(box.buildpass_url, "/answers", {"upsert_reply": "partial"})
    admin(
        box.buildpass_url, "/faults", {"script": [{"route": "bulk-upsert", "fault": "error5xx", "skip": 1, "times": 3}]}
    )
    outcomes = {o.photo_id: o for o in publish_batch(buildpass_client(box), store, config, batch)}
    dropped, landed = photos[-1], photos[:-1]
    assert outcomes[dropped.id].status == PhotoStatus.FAILED
    assert outcomes[dropped.id].reason.startswith("bulk-upsert failed after retries")
    assert ledger(store, dropped) is None  # never assumed created
    made = assert_exactly_once_with_their_bytes(box, landed)
    assert [outcomes[p.id].status for p in landed] == [PhotoStatus.CREATED] * 3
    assert [ledger(store, p)["buildpass_photo_id"] for p in landed] == [made[p.id]["id"] for p in landed]


def test_photos_no_reply_names_and_a_capped_listing_misses_are_sent_again_and_recorded_once(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config, batch, photos = staged(box, tmp_path, 3)
    bp = buildpass_client(box)
    fill_a_capped_listing(bp)
    admin(box.buildpass_url, "/answers", {"created_ids": "absent", "listing": "capped"})
    outcomes = publish_batch(bp, store, config, batch)
    assert [(o.photo_id, o.status) for o in outcomes] == [(p.id, PhotoStatus.CREATED) for p in photos]
    made = {m["externalSourceId"]: m for m in in_buildpass(box) if not m["externalSourceId"].startswith("older-")}
    assert sorted(made) == sorted(p.id for p in photos)
    assert [ledger(store, p)["attachment_key"] for p in photos] == [made[p.id]["key"] for p in photos]
    counts = route_counts(box.buildpass_url)
    assert (counts["bulk-upsert"], counts["photos-list"]) == (1 + 2, 1)  # the older ones, ours twice


def fill_a_capped_listing(bp: BuildPassClient) -> None:
    """100 photos already in the project fill a listing capped at 100: ours are not in it."""
    jpeg = images.jpeg_bytes("older", 2048)
    part = FilePart("file", "older.jpg", "image/jpeg", len(jpeg), lambda: io.BytesIO(jpeg))
    key = bp.upload_attachments("buil_demo", [part])[0]
    older = [
        {"externalSourceId": f"older-{n}", "fileName": f"older-{n}.jpg", "imageAttachment": key.as_reference()}
        for n in range(100)
    ]
    bp.bulk_upsert(
        "buil_demo",
        source_id="other",
        source_app="other",
        project_id="proj_demo",
        folder_id=None,
        folder_name="Older",
        photos=older,
    )


def test_single_mode_never_creates_again_what_a_capped_listing_cannot_rule_out(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config, batch, photos = staged(box, tmp_path, 2, publish_mode="single")
    bp = buildpass_client(box)
    fill_a_capped_listing(bp)
    admin(box.buildpass_url, "/answers", {"listing": "capped"})
    admin(box.buildpass_url, "/faults", {"script": [{"route": "photos-create", "fault": "lost_response", "times": 1}]})
    outcomes = publish_batch(bp, store, config, batch)
    assert [o.status for o in outcomes] == [PhotoStatus.FAILED, PhotoStatus.CREATED]
    assert "not created again" in outcomes[0].reason and "may be incomplete" in outcomes[0].reason
    ours = [m["externalSourceId"] for m in in_buildpass(box) if not m["externalSourceId"].startswith("older-")]
    assert sorted(ours) == sorted(p.id for p in photos)  # the lost create made it once; nothing made twice
    assert ledger(store, photos[0])["state"] == "intent"

    # A replay of the batch cannot rule it out either: still one photo, still failed.
    again = publish_batch(bp, store, config, batch)
    assert [o.status for o in again] == [PhotoStatus.PRESENT, PhotoStatus.FAILED]
    assert sum(1 for m in in_buildpass(box) if m["externalSourceId"] == photos[0].id) == 1
