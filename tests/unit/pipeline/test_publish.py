"""The publish step against the BuildPass emulator (real uploads, the upsert's idempotency, a
refused upload), from photos staged by the stage step from the ACC emulator into an in-memory S3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sandbox
from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import AccPhoto, Batch, Outcome, PhotoStatus
from acc_buildpass.pipeline.publish import publish_batch
from acc_buildpass.pipeline.stage import stage_batch
from acc_buildpass.storage import Layout, Store

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


def test_a_refused_bulk_upload_falls_back_photo_by_photo(box: sandbox.Sandbox, tmp_path: Path) -> None:
    store, config, batch, photos = staged(box, tmp_path, 3)
    bad = photos[1]
    stored = store.s3.objects[f"staging/{store.layout.object_key(bad.project_id, bad.id)}"]  # type: ignore[attr-defined]
    stored.body = b"x" * len(stored.body)  # no longer an image: BuildPass refuses the whole request

    outcomes = {o.photo_id: o for o in publish_batch(buildpass_client(box), store, config, batch)}
    assert outcomes[bad.id].status == PhotoStatus.FAILED
    assert outcomes[bad.id].reason.startswith("BuildPass refused the image: ")
    assert [outcomes[p.id].status for p in (photos[0], photos[2])] == [PhotoStatus.CREATED] * 2
    assert route_counts(box.buildpass_url)["bulk-upload"] == 1 + 3  # the refused chunk, then one by one
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
