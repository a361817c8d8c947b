"""Publish: upload staged bytes to BuildPass and create each photo exactly once.

Bulk mode (default) relies on ``bulk-upsert`` being idempotent per externalSourceId. Single
mode (``POST /photos``, which does not deduplicate) records an intent in the ledger before
creating, and when an outcome is unknown it looks for the photo before trying again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from acc_buildpass.clients.buildpass import Attachment, BuildPassClient, BuildPassPhoto
from acc_buildpass.clients.multipart import FilePart
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ApiError, BadRequest, ServerError, TransportError
from acc_buildpass.mapping import Target, create_photo, file_name, upsert_photo
from acc_buildpass.models import AccPhoto, Batch, LedgerState, Outcome, PhotoStatus
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)

UPSERT_CHUNK = 100  # photos per bulk-upsert call (the API's maximum is not documented)


class _Staged:
    def __init__(self, photo: AccPhoto, outcome: Outcome, store: Store) -> None:
        self.photo = photo
        self.outcome = outcome
        self.key = store.layout.object_key(photo.project_id, photo.id)
        self.content_type = outcome.content_type or "image/jpeg"
        self._store = store

    def part(self) -> FilePart:
        return FilePart(
            "file",
            file_name(self.photo, self.content_type),
            self.content_type,
            int(self.outcome.size or 0),
            partial(self._store.open_object, self.key),
        )


def _chunks(items: list[_Staged], count: int, size: int) -> Iterator[list[_Staged]]:
    chunk: list[_Staged] = []
    total = 0
    for item in items:
        item_size = int(item.outcome.size or 0)
        if chunk and (len(chunk) >= count or total + item_size > size):
            yield chunk
            chunk, total = [], 0
        chunk.append(item)
        total += item_size
    if chunk:
        yield chunk


def _upload(bp: BuildPassClient, builder_id: str, chunk: list[_Staged]) -> dict[str, Attachment | str]:
    """Attachments for a chunk; a rejected chunk is retried photo by photo to find the culprit."""
    try:
        attachments = bp.upload_attachments(builder_id, [s.part() for s in chunk])
        return {s.photo.id: a for s, a in zip(chunk, attachments, strict=True)}
    except BadRequest as exc:
        if len(chunk) == 1:
            return {chunk[0].photo.id: f"BuildPass refused the image: {exc}"}
        log.warning("bulk upload of %d photos refused (%s); uploading them one by one", len(chunk), exc)
    result: dict[str, Attachment | str] = {}
    for staged in chunk:
        result.update(_upload(bp, builder_id, [staged]))
    return result


def _upload_all(
    bp: BuildPassClient, batch: Batch, ready: list[_Staged], config: PipelineConfig
) -> dict[str, Attachment | str]:
    chunks = list(_chunks(ready, config.upload_chunk, config.upload_chunk_bytes))
    uploaded: dict[str, Attachment | str] = {}
    started, done, done_bytes = time.monotonic(), 0, 0
    with ThreadPoolExecutor(max_workers=config.upload_threads, thread_name_prefix="upload") as pool:
        futures = [pool.submit(_upload, bp, batch.builder_id, chunk) for chunk in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            try:
                uploaded.update(future.result())
            except ApiError as exc:
                uploaded.update({s.photo.id: f"upload failed after retries: {exc}" for s in chunk})
            done += len(chunk)
            done_bytes += sum(int(s.outcome.size or 0) for s in chunk)
            elapsed = max(time.monotonic() - started, 1e-6)
            log.info(
                "%s: %d of %d photos uploaded, %.1f MB, %.1f MB/s",
                batch.label,
                done,
                len(ready),
                done_bytes / 1e6,
                done_bytes / 1e6 / elapsed,
            )
    return uploaded


def publish_bulk(
    bp: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch, ready: list[_Staged]
) -> list[Outcome]:
    """Upload the attachments, then ``bulk-upsert`` the photos in chunks, idempotent per photo."""
    outcomes: list[Outcome] = []
    uploaded = _upload_all(bp, batch, ready, config)
    entries: list[tuple[_Staged, dict[str, Any]]] = []
    for sequence, staged in enumerate(ready):
        attachment = uploaded.get(staged.photo.id)
        if isinstance(attachment, Attachment):
            entries.append(
                (staged, upsert_photo(staged.photo, staged.content_type, attachment.as_reference(), sequence))
            )
        else:
            outcomes.append(Outcome(staged.photo.id, PhotoStatus.FAILED, reason=str(attachment)))
    for start in range(0, len(entries), UPSERT_CHUNK):
        chunk = entries[start : start + UPSERT_CHUNK]
        outcomes += _upsert_chunk(bp, store, config, batch, chunk, uploaded)
    return outcomes


def _upsert_chunk(
    bp: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    batch: Batch,
    chunk: list[tuple[_Staged, dict[str, Any]]],
    uploaded: dict[str, Attachment | str],
) -> list[Outcome]:
    """One ``bulk-upsert`` call, then a ledger entry for each photo that landed."""
    try:
        result = bp.bulk_upsert(
            batch.builder_id,
            source_id=f"acc:{batch.acc_project_id}",
            source_app=config.source_app,
            project_id=batch.buildpass_project_id,
            folder_id=batch.folder_id,
            folder_name=None if batch.folder_id else config.folder_name,
            photos=[entry for _, entry in chunk],
        )
    except (BadRequest, TransportError, ServerError) as exc:
        reason = f"bulk-upsert failed after retries: {exc}"
        return [Outcome(s.photo.id, PhotoStatus.FAILED, reason=reason) for s, _ in chunk]
    skipped = set(result.skipped_external_source_ids)
    outcomes: list[Outcome] = []
    landed: list[_Staged] = []
    for staged, _ in chunk:
        photo_id = staged.photo.id
        if photo_id in result.failed:
            reason = f"BuildPass rejected the photo: {result.failed[photo_id]}"
            outcomes.append(Outcome(photo_id, PhotoStatus.FAILED, reason=reason))
            continue
        status = PhotoStatus.PRESENT if photo_id in skipped else PhotoStatus.CREATED
        landed.append(staged)
        outcomes.append(Outcome(photo_id, status, size=staged.outcome.size, sha256=staged.outcome.sha256))

    def record(staged: _Staged) -> None:
        entry = {"state": LedgerState.CREATED, "via": "bulk-upsert", "sha256": staged.outcome.sha256}
        attachment = uploaded.get(staged.photo.id)
        if isinstance(attachment, Attachment) and attachment.key and staged.photo.id not in skipped:
            # The BuildPass photo carries this key: it tells which BuildPass photo this ACC photo
            # became (follow-edits). A skipped photo was made earlier, from another upload: no key.
            entry["attachment_key"] = attachment.key
        _record(store, batch, staged.photo.id, entry)

    # The ledger is written after BuildPass answered (it is a cache of BuildPass's state; the
    # upsert's idempotency is the guarantee), one small S3 write a photo, several at a time.
    with ThreadPoolExecutor(max_workers=config.download_threads, thread_name_prefix="ledger") as pool:
        list(pool.map(record, landed))
    return outcomes


def publish_single(
    bp: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch, ready: list[_Staged]
) -> list[Outcome]:
    target = Target(batch.builder_id, batch.buildpass_project_id, batch.folder_id)
    listing: list[BuildPassPhoto] | None = None

    def find(photo_id: str, keys: list[str], fresh: bool) -> BuildPassPhoto | None:
        nonlocal listing
        if listing is None or fresh:
            listing = bp.list_photos(batch.builder_id, batch.buildpass_project_id, batch.folder_id)
        for existing in listing:
            if existing.external_source_id == photo_id or (existing.key and existing.key in keys):
                return existing
        return None

    outcomes: list[Outcome] = []
    for staged in ready:
        photo_id = staged.photo.id
        ledger_key = store.layout.ledger(batch.builder_id, batch.buildpass_project_id, photo_id)
        intent = store.get_json(ledger_key) or {}
        keys: list[str] = list(intent.get("attachment_keys") or [])
        try:
            if keys and (found := find(photo_id, keys, fresh=False)):
                # An earlier attempt created it but died before recording it.
                entry = {"state": LedgerState.CREATED, "via": "photos", "buildpass_photo_id": found.id}
                _record(store, batch, photo_id, entry)
                outcomes.append(Outcome(photo_id, PhotoStatus.PRESENT))
                continue
            attachment = bp.upload_attachment(batch.builder_id, staged.part())
            keys.append(attachment.key)
            store.put_json(ledger_key, {"state": LedgerState.INTENT, "attachment_keys": keys})
            body = create_photo(staged.photo, staged.content_type, attachment.as_reference(), target)
            created = _create_once(bp, batch.builder_id, body, partial(find, photo_id, keys, True), config)
        except BadRequest as exc:
            outcomes.append(Outcome(photo_id, PhotoStatus.FAILED, reason=f"BuildPass rejected the photo: {exc}"))
            continue
        except ApiError as exc:
            outcomes.append(Outcome(photo_id, PhotoStatus.FAILED, reason=f"create failed after retries: {exc}"))
            continue
        entry = {"state": LedgerState.CREATED, "via": "photos", "buildpass_photo_id": created.id}
        _record(store, batch, photo_id, {**entry, "sha256": staged.outcome.sha256})
        outcomes.append(Outcome(photo_id, PhotoStatus.CREATED, size=staged.outcome.size, sha256=staged.outcome.sha256))
    return outcomes


def _create_once(
    bp: BuildPassClient,
    builder_id: str,
    body: dict[str, Any],
    find: Callable[[], BuildPassPhoto | None],
    config: PipelineConfig,
) -> BuildPassPhoto:
    """POST a photo; when the answer is lost, look for it before posting again."""
    for attempt in range(1, config.retry.attempts + 1):
        try:
            return bp.create_photo(builder_id, body)
        except (TransportError, ServerError) as exc:
            if attempt == config.retry.attempts:
                raise
            log.warning("outcome of creating photo %s unknown (%s); checking BuildPass", body["externalSourceId"], exc)
            time.sleep(min(config.retry.initial_wait * 2 ** (attempt - 1), config.retry.max_wait))
            found = find()
            if found is not None:
                return found
    raise AssertionError("unreachable")


def _record(store: Store, batch: Batch, photo_id: str, entry: dict[str, Any]) -> None:
    entry = {**entry, "recorded_at": time.time(), "window": batch.window.id}
    store.put_json(store.layout.ledger(batch.builder_id, batch.buildpass_project_id, photo_id), entry)


def publish_batch(bp: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch) -> list[Outcome]:
    """Publish one batch from its stage outcomes; photos already recorded are not sent again."""
    stage = store.get_json(store.layout.batch_outcome(batch.window, batch.index, "stage"))
    if stage is None:
        raise ApiError(f"{batch.label}: no stage outcome at batch {batch.index}; the stage task did not finish")
    photos = {p.id: p for key in batch.parts for p in store.read_manifest(key)}
    outcomes: list[Outcome] = []
    ready: list[_Staged] = []
    # skipped, failed and present were settled by the stage step
    candidates = [s for s in (Outcome.from_json(raw) for raw in stage) if s.status == PhotoStatus.STAGED]
    if store.first_attempt(store.layout.batch_outcome(batch.window, batch.index, "publish-attempt")):
        # The stage step has just read the ledger for these photos; another run copying them at the
        # same moment is caught by BuildPass's upsert (bulk) or the intent record (single).
        recorded = [False] * len(candidates)
    else:
        # An earlier attempt at this batch may have created some: the ledger says which.
        with ThreadPoolExecutor(max_workers=config.download_threads, thread_name_prefix="check") as pool:
            recorded = list(
                pool.map(
                    lambda s: store.published(batch.builder_id, batch.buildpass_project_id, s.photo_id), candidates
                )
            )
    for staged, done in zip(candidates, recorded, strict=True):
        if done:
            outcomes.append(Outcome(staged.photo_id, PhotoStatus.PRESENT))
        else:
            ready.append(_Staged(photos[staged.photo_id], staged, store))
    started = time.monotonic()
    publish = publish_bulk if config.publish_mode == "bulk" else publish_single
    outcomes += publish(bp, store, config, batch, ready)
    counts = Counter(str(o.status) for o in outcomes)
    log.info("%s published in %.1f s: %s", batch.label, time.monotonic() - started, dict(counts))
    return outcomes
