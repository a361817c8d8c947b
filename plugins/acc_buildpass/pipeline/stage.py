"""Stage: stream each photo's bytes from ACC into object storage, verified and hashed."""

from __future__ import annotations

import calendar
import hashlib
import io
import logging
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from acc_buildpass.clients import retry
from acc_buildpass.clients.acc import AccClient
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ApiError, Gone, InvalidPhoto, SignedUrlExpired
from acc_buildpass.mapping import sniff_content_type
from acc_buildpass.models import AccPhoto, Batch, Outcome, PhotoStatus
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)

MiB = 1024 * 1024
SPOOL_IN_MEMORY = 8 * MiB  # a photo's bytes held in memory; the rest of a larger one goes to local disk
# Photo bytes held in memory at once by one batch's downloads, whatever the thread count: a
# download reserves its photo's size (ACC's, when positive), capped at SPOOL_IN_MEMORY.
IN_MEMORY_BUDGET = 32 * MiB
URL_CHUNK = 50  # ids per photos:filter call
# Seconds of life a signed URL must have left when a download starts (clock skew between us and
# ACC's storage, connection set-up); a quarter of the URL's life when that is shorter.
URL_MARGIN = 10.0


def url_deadline(url: str, fetched: float) -> float | None:
    """When to stop using a signed URL (epoch seconds), from its ``X-Amz-Date`` and ``X-Amz-Expires``.

    The earlier of "issued + expires" and "fetched + expires", less the margin; when the URL
    looks dead on arrival by our clock, the clocks disagree and the time we got it is trusted.
    None for a URL that does not say (a 403 still refreshes it).

    :param fetched: when ACC handed it to us (``time.time()``)
    """
    query = parse_qs(urlsplit(url).query)
    try:
        expires = float(query["X-Amz-Expires"][0])
        issued = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
    except (KeyError, IndexError, ValueError):
        return None
    margin = min(URL_MARGIN, expires / 4)
    end = fetched + expires
    if issued + expires > fetched + margin:
        end = min(end, issued + expires)
    return end - margin


class SignedUrls:
    """Fresh signed URLs for a set of photos, refreshed together in one call when one expires.

    A URL is never handed out for a download it will not outlive by the margin (above all
    after a retry's wait): the pending set is refreshed first.
    """

    def __init__(self, acc: AccClient, project_id: str) -> None:
        self._acc = acc
        self._project_id = project_id
        self._lock = threading.Lock()
        self._urls: dict[str, str | None] = {}
        self._deadlines: dict[str, float | None] = {}
        self._deleted: set[str] = set()
        self._pending: set[str] = set()
        self.refreshes = 0

    def load(self, photo_ids: list[str]) -> None:
        with self._lock:
            self._pending.update(photo_ids)
            self._fetch(photo_ids)

    def _fetch(self, photo_ids: list[str]) -> None:
        current = self._acc.photos_by_id(self._project_id, photo_ids)
        fetched = time.time()
        self.refreshes += 1
        for photo_id in photo_ids:
            photo = current.get(photo_id)
            if photo is None or photo.deleted_at is not None:
                self._deleted.add(photo_id)
                self._urls[photo_id] = None
            else:
                self._urls[photo_id] = photo.file_url
                self._deadlines[photo_id] = url_deadline(photo.file_url, fetched) if photo.file_url else None

    def url(self, photo_id: str) -> str:
        """A URL that will still work when the download starts, refreshed first when too old.

        :raises Gone: deleted since extraction  :raises ApiError: ACC gave no URL
        """
        with self._lock:
            deadline = self._deadlines.get(photo_id)
            if photo_id not in self._deleted and deadline is not None and time.time() >= deadline:
                log.info("Signed URL of photo %s about to expire; refreshing the pending ones", photo_id)
                self._refresh_pending()
            if photo_id in self._deleted:
                raise Gone("deleted in ACC since extraction")
            url = self._urls.get(photo_id)
        if not url:
            raise ApiError("ACC returned no signed URL for the photo")
        return url

    def expired(self, photo_id: str, used: str) -> None:
        """Refresh every still-pending URL at once, unless another thread already did."""
        with self._lock:
            if self._urls.get(photo_id) == used:
                self._refresh_pending()

    def _refresh_pending(self) -> None:
        pending = sorted(self._pending)
        for start in range(0, len(pending), URL_CHUNK):
            self._fetch(pending[start : start + URL_CHUNK])

    def done(self, photo_id: str) -> None:
        with self._lock:
            self._pending.discard(photo_id)


class ByteBudget:
    """Bytes that threads may hold at once; a reservation larger than the budget waits for all of it."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = limit
        self._changed = threading.Condition()

    @contextmanager
    def hold(self, amount: int) -> Iterator[None]:
        amount = min(amount, self.limit)
        with self._changed:
            self._changed.wait_for(lambda: self._free >= amount)
            self._free -= amount
        try:
            yield
        finally:
            with self._changed:
                self._free += amount
                self._changed.notify_all()


class Spool:
    """Where a download lands: memory up to ``in_memory`` bytes, then a named file on local disk,
    which a multipart upload reads part by part (from memory it would hold its parts). Not
    :class:`tempfile.SpooledTemporaryFile`: it rolls over to a file without a name."""

    def __init__(self, in_memory: int) -> None:
        self._limit = in_memory
        self._memory = io.BytesIO()
        self._file: IO[bytes] | None = None

    def write(self, chunk: bytes) -> int:
        if self._file is None and self._memory.tell() + len(chunk) > self._limit:
            self._file = tempfile.NamedTemporaryFile(prefix="acc-buildpass-", suffix=".photo")  # noqa: SIM115
            with self._memory.getbuffer() as held:
                self._file.write(held)
            self._memory = io.BytesIO()
        return (self._file or self._memory).write(chunk)

    @property
    def path(self) -> str | None:
        """The file on disk, once the bytes outgrew memory."""
        return self._file.name if self._file is not None else None

    def reader(self) -> IO[bytes]:
        target = self._file or self._memory
        target.flush()
        target.seek(0)
        return target

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()  # deletes it
        self._memory = io.BytesIO()


def in_memory(photo: AccPhoto) -> int:
    """The memory its download may hold: ACC's size when positive (0 or none says nothing)."""
    return min(photo.size, SPOOL_IN_MEMORY) if photo.size and photo.size > 0 else SPOOL_IN_MEMORY


class _HashingSink:
    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.head = b""

    def write(self, chunk: bytes) -> int:
        if len(self.head) < 32:
            self.head += chunk[: 32 - len(self.head)]
        self.sha256.update(chunk)
        self.size += len(chunk)
        return self.target.write(chunk)


def intact(head: dict[str, Any] | None, photo: AccPhoto) -> bool:
    """A staged object is reused when we recorded its hash and length, and ACC's size (when
    positive: 0 or none says nothing) agrees."""
    if not head:
        return False
    meta = head.get("Metadata") or {}
    size = head.get("ContentLength")
    return bool(meta.get("sha256")) and (not photo.size or size == photo.size) and size == int(meta.get("size", -1))


def stage_photo(
    acc: AccClient, store: Store, urls: SignedUrls, photo: AccPhoto, policy: retry.RetryPolicy, budget: ByteBudget
) -> Outcome:
    """Download one photo (fresh URL on a 403), check it, and put it in object storage; each
    attempt first waits for its share of the batch's memory ``budget``."""
    key = store.layout.object_key(photo.project_id, photo.id)

    def attempt() -> Outcome:
        with budget.hold(in_memory(photo)), Spool(SPOOL_IN_MEMORY) as spool:
            url = urls.url(photo.id)
            sink = _HashingSink(spool)  # type: ignore[arg-type]
            try:
                acc.download(url, sink)  # type: ignore[arg-type]
            except SignedUrlExpired:
                urls.expired(photo.id, url)
                raise
            if sink.size == 0:
                raise InvalidPhoto(photo.id, "ACC served an empty file (0 bytes)")
            # The type first: a body that is not an image is final, a short one may be a cut transfer.
            content_type = sniff_content_type(sink.head)
            if content_type is None:
                raise InvalidPhoto(photo.id, f"file is not an image (first bytes {sink.head[:8].hex()})")
            if photo.size and sink.size != photo.size:
                # ACC's size is used only when positive (0 or none is common and says nothing).
                # The transfer was whole (download() checks Content-Length): asking again gives the same bytes.
                raise InvalidPhoto(photo.id, f"file is {sink.size} bytes, ACC's record says {photo.size}")
            digest = sink.sha256.hexdigest()
            metadata = {"sha256": digest, "size": str(sink.size), "acc-photo-id": photo.id}
            store.put_staged(key, spool.reader(), sink.size, content_type, metadata, path=spool.path)
            return Outcome(photo.id, PhotoStatus.STAGED, size=sink.size, sha256=digest, content_type=content_type)

    def retryable(exc: BaseException) -> bool:
        return isinstance(exc, SignedUrlExpired) or retry.is_retryable(exc)

    try:
        return retry.call(policy, attempt, describe=f"download of photo {photo.id}", retry_if=retryable)
    except Gone as exc:
        return Outcome(photo.id, PhotoStatus.SKIPPED, reason=f"deleted in ACC since extraction ({exc.message})")
    except InvalidPhoto as exc:
        return Outcome(photo.id, PhotoStatus.FAILED, reason=exc.reason)
    except ApiError as exc:
        return Outcome(photo.id, PhotoStatus.FAILED, reason=f"download failed after retries: {exc}")
    finally:
        urls.done(photo.id)


def settled(store: Store, batch: Batch, photo: AccPhoto) -> Outcome | None:
    """Present in BuildPass, or staged intact already: nothing to download.

    The staged object is looked at first: a photo is published from its staged object, so one
    never staged was never published by us, and a first copy costs one small S3 read, not two.
    (Were staged objects deleted by hand, their photos would be downloaded and uploaded again;
    BuildPass's upsert, or the single mode's intent record, still keeps them single.)
    """
    head = store.head(store.layout.object_key(photo.project_id, photo.id))
    if head is None:
        return None
    if store.published(batch.builder_id, batch.buildpass_project_id, photo.id):
        return Outcome(photo.id, PhotoStatus.PRESENT)
    if intact(head, photo):
        return Outcome(
            photo.id,
            PhotoStatus.STAGED,
            size=head["ContentLength"],
            sha256=head["Metadata"]["sha256"],
            content_type=head.get("ContentType"),
            reused=True,
        )
    return None


OnOutcome = Callable[[Outcome], None]


def _download_all(
    acc: AccClient, store: Store, config: PipelineConfig, batch: Batch, todo: list[AccPhoto], on_outcome: OnOutcome
) -> tuple[list[Outcome], int]:
    """Stage ``todo``, signed URLs fetched a chunk at a time: (the outcomes, signed-URL calls made)."""
    outcomes: list[Outcome] = []
    started = time.monotonic()
    done_bytes = 0
    urls = SignedUrls(acc, batch.acc_project_id)
    budget = ByteBudget(IN_MEMORY_BUDGET)
    for start in range(0, len(todo), URL_CHUNK):
        chunk = todo[start : start + URL_CHUNK]
        urls.load([p.id for p in chunk])
        with ThreadPoolExecutor(max_workers=config.download_threads, thread_name_prefix="download") as pool:
            for outcome in pool.map(lambda p: stage_photo(acc, store, urls, p, config.retry, budget), chunk):
                outcomes.append(outcome)
                on_outcome(outcome)
                done_bytes += outcome.size or 0
        elapsed = max(time.monotonic() - started, 1e-6)
        log.info(
            "%s: %d of %d photos downloaded, %.1f MB, %.1f MB/s",
            batch.label,
            min(start + URL_CHUNK, len(todo)),
            len(todo),
            done_bytes / 1e6,
            done_bytes / 1e6 / elapsed,
        )
    return outcomes, urls.refreshes


def stage_batch(
    acc: AccClient,
    store: Store,
    config: PipelineConfig,
    batch: Batch,
    on_outcome: OnOutcome | None = None,
    photos: list[AccPhoto] | None = None,
) -> list[Outcome]:
    """Stage one batch; photos already in BuildPass or already staged intact are not downloaded.

    :param on_outcome: called with each photo's outcome as soon as it is known (in this thread)
    :param photos: the batch's photos, when the caller has read its manifest already
    """
    on_outcome = on_outcome or (lambda outcome: None)
    photos = store.read_manifests(batch.parts) if photos is None else photos
    outcomes: dict[str, Outcome] = {}
    todo: list[AccPhoto] = []
    # Small S3 reads, one or two a photo: done by the download threads, not one after another.
    with ThreadPoolExecutor(max_workers=config.download_threads, thread_name_prefix="check") as pool:
        for photo, outcome in zip(photos, pool.map(lambda p: settled(store, batch, p), photos), strict=True):
            if outcome is None:
                todo.append(photo)
            else:
                outcomes[photo.id] = outcome
                on_outcome(outcome)
    downloaded, refreshes = _download_all(acc, store, config, batch, todo, on_outcome)
    outcomes.update((o.photo_id, o) for o in downloaded)
    ordered = [outcomes[p.id] for p in photos]
    counts = Counter(str(o.status) for o in ordered)
    log.info("%s staged: %s (%d downloaded, %d signed-URL calls)", batch.label, dict(counts), len(todo), refreshes)
    return ordered
