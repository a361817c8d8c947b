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
from dataclasses import replace
from functools import partial
from typing import Any

from acc_buildpass.clients.buildpass import Attachment, BuildPassClient, BuildPassPhoto, PhotoListing, UpsertResult
from acc_buildpass.clients.multipart import FilePart
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ApiError, BadRequest, NotFound, ServerError, TransportError
from acc_buildpass.mapping import Target, create_photo, upload_name, upsert_photo
from acc_buildpass.models import AccPhoto, Batch, LedgerState, Outcome, PhotoStatus, ProjectMapping
from acc_buildpass.pipeline import folders
from acc_buildpass.pipeline.halving import Piece, RequestSize, send_in_halves
from acc_buildpass.pipeline.verify import listing_incomplete
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)

# Photos accounted for together (one listing at most when a reply leaves some out); a request
# carries fewer when BuildPass refuses that many (the API's maximum is not documented).
UPSERT_CHUNK = 100


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
            upload_name(self.photo, self.content_type),
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


def _upload(
    bp: BuildPassClient, builder_id: str, chunk: list[_Staged], size: RequestSize
) -> dict[str, Attachment | str]:
    """Attachments for a chunk; a request refused as a whole (a bad image, a limit) is halved."""

    def send(part: list[_Staged]) -> list[Attachment]:
        return bp.upload_attachments(builder_id, [s.part() for s in part])

    result: dict[str, Attachment | str] = {}
    for piece in send_in_halves(chunk, send, size, keep=(ApiError,), what="bulk upload"):
        if piece.result is not None:
            result.update({s.photo.id: a for s, a in zip(piece.items, piece.result, strict=True)})
        else:
            why = "BuildPass refused the image" if piece.refused else "upload failed after retries"
            result.update({s.photo.id: f"{why}: {piece.error}" for s in piece.items})
    return result


def _upload_all(
    bp: BuildPassClient, batch: Batch, ready: list[_Staged], config: PipelineConfig
) -> dict[str, Attachment | str]:
    chunks = list(_chunks(ready, config.upload_chunk, config.upload_chunk_bytes))
    size = RequestSize(config.upload_chunk)
    uploaded: dict[str, Attachment | str] = {}
    started, done, done_bytes = time.monotonic(), 0, 0
    with ThreadPoolExecutor(max_workers=config.upload_threads, thread_name_prefix="upload") as pool:
        futures = [pool.submit(_upload, bp, batch.builder_id, chunk, size) for chunk in chunks]
        for chunk, future in zip(chunks, futures, strict=True):
            uploaded.update(future.result())
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
    entries: list[_Entry] = []
    for sequence, staged in enumerate(ready):
        attachment = uploaded.get(staged.photo.id)
        if isinstance(attachment, Attachment):
            entries.append(
                (staged, upsert_photo(staged.photo, staged.content_type, attachment.as_reference(), sequence))
            )
        else:
            outcomes.append(Outcome(staged.photo.id, PhotoStatus.FAILED, reason=str(attachment)))
    upserts = _Upserts(bp, store, config, batch)
    for start in range(0, len(entries), UPSERT_CHUNK):
        outcomes += upserts.publish(entries[start : start + UPSERT_CHUNK])
    return outcomes


_Entry = tuple[_Staged, dict[str, Any]]  # a photo and its entry in ``bulk-upsert``'s ``photos``
_Settled = tuple[Outcome, dict[str, Any] | None]  # and what to record in the ledger when it is in BuildPass
RESENDS = 2  # a photo no reply names and no listing shows is sent again (the upsert skips repeats)
UNACCOUNTED = (
    "BuildPass's bulk-upsert replies did not account for the photo (neither created, skipped nor failed) "
    "and the project's photo listing does not show it"
)


class _Upserts:
    """``bulk-upsert`` of a batch's photos, each accounted for by BuildPass's reply or looked up.

    A photo the reply does not name is looked for in the project's listing (by the key of our
    attachment, or an ``externalSourceId`` BuildPass gives back), never assumed created; one
    not found there is sent again, up to :data:`RESENDS` times (the upsert skips it when it is there
    after all, and a reply naming it skipped then says it was made from our upload).
    """

    def __init__(self, bp: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch) -> None:
        self.bp, self.store, self.config, self.batch = bp, store, config, batch
        self.size = RequestSize(UPSERT_CHUNK)
        self.folder_checked = False

    def send(self, entries: list[_Entry]) -> UpsertResult:
        """One ``bulk-upsert``; a 404 (the remembered folder deleted in BuildPass) finds the folder
        again, once, and sends to it."""
        try:
            return self._send(entries)
        except NotFound:
            mapping = self._mapping()
            if self.folder_checked or mapping is None:
                raise
            self.folder_checked = True
            folder_id = folders.found_again(self.bp, self.store, self.config, mapping)
            if folder_id is None or folder_id == self.batch.folder_id:
                raise
            self.batch = replace(self.batch, folder_id=folder_id)
            return self._send(entries)

    def _mapping(self) -> ProjectMapping | None:
        b = self.batch
        for m in self.config.projects:
            if (m.acc_project_id, m.builder_id, m.buildpass_project_id) == (
                b.acc_project_id,
                b.builder_id,
                b.buildpass_project_id,
            ):
                return m
        return None

    def _send(self, entries: list[_Entry]) -> UpsertResult:
        batch = self.batch
        return self.bp.bulk_upsert(
            batch.builder_id,
            source_id=f"acc:{batch.acc_project_id}",
            source_app=self.config.source_app,
            project_id=batch.buildpass_project_id,
            folder_id=batch.folder_id,
            folder_name=None if batch.folder_id else self.config.folder_name,
            photos=[entry for _, entry in entries],
        )

    def publish(self, chunk: list[_Entry]) -> list[Outcome]:
        """Upsert ``chunk``, then write a ledger entry for each photo that is in BuildPass."""
        settled: dict[str, _Settled] = {}
        todo = chunk
        for attempt in range(1 + RESENDS):
            if attempt:
                log.warning("%s: sending %d unaccounted photos again", self.batch.label, len(todo))
            pieces = send_in_halves(todo, self.send, self.size, keep=(TransportError, ServerError), what="bulk-upsert")
            todo = [entry for piece in pieces for entry in self._account(piece, settled, resent=bool(attempt))]
            todo = self._look_up(todo, settled) if todo else todo
            if not todo:
                break
        for staged, _ in todo:
            settled[staged.photo.id] = (Outcome(staged.photo.id, PhotoStatus.FAILED, reason=UNACCOUNTED), None)
        self._record(chunk, settled)
        return [settled[staged.photo.id][0] for staged, _ in chunk]

    @staticmethod
    def _account(piece: Piece[_Entry, UpsertResult], settled: dict[str, _Settled], *, resent: bool) -> list[_Entry]:
        """Settle the photos of one request by what its reply names; :returns: those it does not name.

        :param resent: the photos were sent before and that reply did not name them: one now
            skipped was made then, from the same attachment
        """
        result = piece.result
        if result is None:
            if piece.refused and len(piece.items) == 1:
                reason = f"BuildPass rejected the photo: {piece.error}"
            else:
                reason = f"bulk-upsert {'refused' if piece.refused else 'failed after retries'}: {piece.error}"
            settled.update(
                {s.photo.id: (Outcome(s.photo.id, PhotoStatus.FAILED, reason=reason), None) for s, _ in piece.items}
            )
            return []
        skipped, created = set(result.skipped_external_source_ids), set(result.created_attachment_ids)
        unaccounted: list[_Entry] = []
        for staged, entry in piece.items:
            photo_id, key = staged.photo.id, entry["imageAttachment"]["key"]
            if photo_id in result.failed:
                reason = f"BuildPass rejected the photo: {result.failed[photo_id]}"
                settled[photo_id] = (Outcome(photo_id, PhotoStatus.FAILED, reason=reason), None)
            elif photo_id in skipped and resent:
                settled[photo_id] = (_landed(staged, PhotoStatus.CREATED), {"attachment_key": key})
            elif photo_id in skipped:
                # Made earlier, from another upload: no key of ours links it.
                settled[photo_id] = (_landed(staged, PhotoStatus.PRESENT), {})
            elif key in created:
                settled[photo_id] = (_landed(staged, PhotoStatus.CREATED), {"attachment_key": key})
            else:
                unaccounted.append((staged, entry))
        return _counted_as_created(
            unaccounted, created - {entry["imageAttachment"]["key"] for _, entry in piece.items}, settled
        )

    def _look_up(self, unaccounted: list[_Entry], settled: dict[str, _Settled]) -> list[_Entry]:
        """One listing of the project for the photos no reply named; :returns: those not found."""
        batch = self.batch
        log.info("%s: %d photos not named in BuildPass's reply; looking them up", batch.label, len(unaccounted))
        try:
            listed = self.bp.list_photos(batch.builder_id, batch.buildpass_project_id)
        except ApiError as exc:
            log.warning("%s: listing the project's photos failed: %s", batch.label, exc)
            return unaccounted
        by_key = {p.key: p for p in listed if p.key}
        by_source = {p.external_source_id: p for p in listed if p.external_source_id}
        left: list[_Entry] = []
        for staged, entry in unaccounted:
            photo_id, key = staged.photo.id, entry["imageAttachment"]["key"]
            if found := by_key.get(key):
                extra = {"attachment_key": key, "buildpass_photo_id": found.id}
                settled[photo_id] = (_landed(staged, PhotoStatus.CREATED), extra)
            elif found := by_source.get(photo_id):
                settled[photo_id] = (_landed(staged, PhotoStatus.PRESENT), {"buildpass_photo_id": found.id})
            else:
                left.append((staged, entry))
        return left

    def _record(self, chunk: list[_Entry], settled: dict[str, _Settled]) -> None:
        # The ledger is written after BuildPass answered (it is a cache of BuildPass's state; the
        # upsert's idempotency is the guarantee), one small S3 write a photo, several at a time.
        def record(staged: _Staged) -> None:
            extra = settled[staged.photo.id][1]
            if extra is not None:
                entry = {"state": LedgerState.CREATED, "via": "bulk-upsert", "sha256": staged.outcome.sha256}
                _record(self.store, self.batch, staged.photo.id, {**entry, **extra})

        with ThreadPoolExecutor(max_workers=self.config.download_threads, thread_name_prefix="ledger") as pool:
            list(pool.map(record, [staged for staged, _ in chunk]))


def _counted_as_created(unaccounted: list[_Entry], other_ids: set[str], settled: dict[str, _Settled]) -> list[_Entry]:
    """The reply names created photos by ids of its own (not our attachment keys): when it names
    exactly as many as it leaves unaccounted, each of those was created (a reply that leaves a
    photo out names fewer, and they are looked up). :returns: the photos still unaccounted."""
    if not unaccounted or len(other_ids) != len(unaccounted):
        return unaccounted
    for staged, entry in unaccounted:
        settled[staged.photo.id] = (
            _landed(staged, PhotoStatus.CREATED),
            {"attachment_key": entry["imageAttachment"]["key"]},
        )
    return []


def _landed(staged: _Staged, status: PhotoStatus) -> Outcome:
    return Outcome(staged.photo.id, status, size=staged.outcome.size, sha256=staged.outcome.sha256)


UNKNOWN_CREATE = (
    "an earlier create of this photo may have succeeded (its answer was lost) and BuildPass's listing "
    "does not show it, but may be incomplete: not created again, to make no second photo; look for it "
    "in BuildPass (acc-buildpass verify), then replay"
)


class _Unprovable(Exception):
    """Whether an earlier ``POST /photos`` made the photo cannot be told from BuildPass's listing."""


def publish_single(
    bp: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch, ready: list[_Staged]
) -> list[Outcome]:
    target = Target(batch.builder_id, batch.buildpass_project_id, batch.folder_id)
    listing: PhotoListing | None = None

    def find(photo_id: str, keys: list[str], fresh: bool) -> BuildPassPhoto | None:
        """The photo an earlier create made, or None when the listing proves there is none.

        :raises _Unprovable: not listed, but the listing may be incomplete: creating again could
            make a second photo (``POST /photos`` does not deduplicate)
        """
        nonlocal listing
        if listing is None or fresh:
            listing = bp.photo_listing(batch.builder_id, batch.buildpass_project_id, batch.folder_id)
        for existing in listing.photos:
            if existing.external_source_id == photo_id or (existing.key and existing.key in keys):
                return existing
        if why := listing_incomplete(listing.photos, listing.paging_hint):
            raise _Unprovable(f"{UNKNOWN_CREATE}: {why}")
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
        except _Unprovable as exc:
            outcomes.append(Outcome(photo_id, PhotoStatus.FAILED, reason=str(exc)))
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


def first_attempt(store: Store, batch: Batch) -> bool:
    """Whether this is the batch's first publish attempt (the marker did not exist; it does now)."""
    return store.first_attempt(store.layout.batch_outcome(batch.window, batch.index, "publish-attempt"))


def publish_staged(
    bp: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    batch: Batch,
    staged: list[Outcome],
    photos: dict[str, AccPhoto],
    *,
    first: bool,
) -> list[Outcome]:
    """Publish these stage outcomes of the batch (those staged; skipped, failed and present were
    settled by the stage step). On the batch's ``first`` attempt nothing of it can be in the
    ledger yet (the stage step has just read it; another run copying the same photos at the same
    moment is caught by BuildPass's upsert, or by the intent record in single mode); on a later
    one, photos the ledger records are present and not sent again."""
    candidates = [s for s in staged if s.status == PhotoStatus.STAGED]
    recorded = [False] * len(candidates)
    if not first:
        with ThreadPoolExecutor(max_workers=config.download_threads, thread_name_prefix="check") as pool:
            recorded = list(
                pool.map(
                    lambda s: store.published(batch.builder_id, batch.buildpass_project_id, s.photo_id), candidates
                )
            )
    outcomes = [Outcome(s.photo_id, PhotoStatus.PRESENT) for s, done in zip(candidates, recorded, strict=True) if done]
    ready = [_Staged(photos[s.photo_id], s, store) for s, done in zip(candidates, recorded, strict=True) if not done]
    publish = publish_bulk if config.publish_mode == "bulk" else publish_single
    return outcomes + publish(bp, store, config, batch, ready)


def publish_batch(bp: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch) -> list[Outcome]:
    """Publish one batch from its stage outcomes; photos already recorded are not sent again."""
    stage = store.get_json(store.layout.batch_outcome(batch.window, batch.index, "stage"))
    if stage is None:
        raise ApiError(f"{batch.label}: no stage outcome at batch {batch.index}; the stage task did not finish")
    photos = {p.id: p for p in store.read_manifests(batch.parts)}
    started = time.monotonic()
    staged = [Outcome.from_json(raw) for raw in stage]
    outcomes = publish_staged(bp, store, config, batch, staged, photos, first=first_attempt(store, batch))
    log_published(batch, started, outcomes)
    return outcomes


def log_published(batch: Batch, started: float, outcomes: list[Outcome]) -> None:
    """One line a batch: how long since ``started`` (monotonic) and its outcomes by status."""
    counts = Counter(str(o.status) for o in outcomes)
    log.info("%s published in %.1f s: %s", batch.label, time.monotonic() - started, dict(counts))
