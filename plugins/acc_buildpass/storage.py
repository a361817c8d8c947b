"""The one place that knows the object-storage layout: keys, manifests, outcomes, the ledger.

Layout under ``{prefix}/`` (every part an id we validated, never a title):

- ``objects/{acc_project_id}/{photo_id}``: staged image bytes, metadata ``sha256`` and ``size``
- ``windows/{window}/{acc_project_id}/manifest/part-00000.parquet``: eligible photos, in pages
- ``windows/{window}/{acc_project_id}/extract.json``: counts and what was skipped, and why
- ``windows/{window}/batches/{batch:05d}/stage.json`` and ``publish.json``: per-photo outcomes;
  ``publish-attempt.json``: a publish of that batch has begun before
- ``windows/{window}/report.json`` and ``report.md``; ``plan.json``: a plan from the operations DAG
- ``windows/{window}/verify.json``: what ``acc-buildpass verify`` last found reading BuildPass back
- ``windows/{window}/{acc_project_id}/replay/part-00000.parquet`` and ``windows/{window}/report-replay.json``:
  what ``acc-buildpass replay`` retried (its batches are numbered from 90000) and what came of it
- ``ledger/{builder_id}/{buildpass_project_id}/{photo_id}.json``: a photo is in BuildPass
- ``check/probe-{token}``: a moment's probe object of ``acc-buildpass check`` (deleted at once)
- ``follow/{builder_id}/{buildpass_project_id}/{acc_project_id}.json``: what ``follow-edits`` last
  linked (ACC photo → BuildPass photo id and ACC ``createdAt``), a cache that saves a ledger read a photo
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from acc_buildpass.errors import ConfigError, StorageError
from acc_buildpass.models import AccPhoto, LedgerState, Window, valid_id

MANIFEST_COLUMNS = [
    "id",
    "project_id",
    "title",
    "description",
    "size",
    "media_type",
    "created_at",
    "taken_at",
]

# Multipart to S3 from 16 MiB, in 8 MiB parts, two at a time and at most two read ahead: about
# 16 MiB of buffers per upload (boto3's defaults hold up to 80 MiB for each of our download threads).
_TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024 * 1024,
    multipart_chunksize=8 * 1024 * 1024,
    max_concurrency=2,
)
_TRANSFER.max_in_memory_upload_chunks = 2  # an s3transfer setting boto3's constructor does not take
RECENT_BYTES = 16 * 1024 * 1024  # photos this process put lately, read back from memory (:class:`_Recent`)
PROBE_BODY = b"acc-buildpass check\n"


def _part(value: str, what: str) -> str:
    if not valid_id(value):
        raise ValueError(f"{what} {value!r} is not a valid id")
    return value


@dataclass(frozen=True)
class Layout:
    bucket: str
    prefix: str

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def object_key(self, acc_project_id: str, photo_id: str) -> str:
        return self._key("objects", _part(acc_project_id, "project id"), _part(photo_id, "photo id"))

    def window_key(self, window: Window, *parts: str) -> str:
        return self._key("windows", window.id, *parts)

    def manifest_part(self, window: Window, acc_project_id: str, part: int) -> str:
        return self.window_key(window, _part(acc_project_id, "project id"), "manifest", f"part-{part:05d}.parquet")

    def extract_summary(self, window: Window, acc_project_id: str) -> str:
        return self.window_key(window, _part(acc_project_id, "project id"), "extract.json")

    def batch_outcome(self, window: Window, batch: int, step: str) -> str:
        return self.window_key(window, "batches", f"{batch:05d}", f"{step}.json")

    def report(self, window: Window, suffix: str) -> str:
        return self.window_key(window, f"report.{suffix}")

    def replay_part(self, window: Window, acc_project_id: str, part: int) -> str:
        return self.window_key(window, _part(acc_project_id, "project id"), "replay", f"part-{part:05d}.parquet")

    def replay_report(self, window: Window, suffix: str) -> str:
        return self.window_key(window, f"report-replay.{suffix}")

    def plan_report(self, window: Window) -> str:
        """Where the DAG ``acc_buildpass_operations`` writes a plan, for the run's Copy report tab."""
        return self.window_key(window, "plan.json")

    def verify_report(self, window: Window) -> str:
        """Where ``acc-buildpass verify`` (and the operations DAG's verify) writes what it found."""
        return self.window_key(window, "verify.json")

    def _per_target(self, kind: str, builder_id: str, buildpass_project_id: str, *parts: str) -> str:
        """A key under ``{kind}/{builder_id}/{buildpass_project_id}/``: what one BuildPass project holds."""
        return self._key(kind, _part(builder_id, "builder id"), _part(buildpass_project_id, "project id"), *parts)

    def ledger(self, builder_id: str, buildpass_project_id: str, photo_id: str) -> str:
        return self._per_target("ledger", builder_id, buildpass_project_id, f"{_part(photo_id, 'photo id')}.json")

    def folder_cache(self, builder_id: str, buildpass_project_id: str) -> str:
        """The BuildPass folder the project's photos go to, remembered between runs."""
        return self._per_target("folders", builder_id, buildpass_project_id, "folder.json")

    def ledger_prefix(self, builder_id: str, buildpass_project_id: str) -> str:
        return self._per_target("ledger", builder_id, buildpass_project_id) + "/"

    def follow_links(self, builder_id: str, buildpass_project_id: str, acc_project_id: str) -> str:
        name = f"{_part(acc_project_id, 'project id')}.json"
        return self._per_target("follow", builder_id, buildpass_project_id, name)

    def probe(self, token: str) -> str:
        return self._key("check", f"probe-{_part(token, 'probe token')}")


class _Recent:
    """The bytes of the photos this process put lately, so that uploading one to BuildPass soon
    after staging it does not read it back from S3 (a GET cost more CPU here than the PUT).

    At most ``limit`` bytes in all, the oldest dropped first; an entry goes when it is read, and
    a read that misses goes to S3 as before. The bytes are those we put, already verified.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def keep(self, key: str, data: bytes) -> None:
        if len(data) > self.limit:
            return
        with self._lock:
            self._size += len(data) - len(self._items.pop(key, b""))
            self._items[key] = data
            while self._size > self.limit:
                self._size -= len(self._items.popitem(last=False)[1])

    def take(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.pop(key, None)
            self._size -= len(data or b"")
            return data


class Store:
    """Every read and write of object storage, over one bucket (boto3 client injected)."""

    def __init__(self, s3: Any, layout: Layout, recent_bytes: int = RECENT_BYTES) -> None:
        self.s3 = s3
        self.layout = layout
        self._recent = _Recent(recent_bytes)

    @property
    def bucket(self) -> str:
        return self.layout.bucket

    def check_bucket(self) -> None:
        """:raises ConfigError: the bucket does not exist or is not reachable"""
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise ConfigError(
                f"staging bucket {self.bucket!r} is not usable ({code or exc}): create it or fix "
                "'staging_bucket' in the Variable and the connection acc_buildpass_staging"
            ) from None

    def probe(self, key: str) -> None:
        """The bucket is there and takes a write and a delete: one small object under ``key``,
        written and deleted at once.

        :raises ConfigError: the bucket does not exist or is not usable (as :meth:`check_bucket`)
        :raises StorageError: S3 did not answer, or refused the write or the delete
        """
        _translated("HeadBucket", self.check_bucket)
        _translated("PutObject", lambda: self.s3.put_object(Bucket=self.bucket, Key=key, Body=PROBE_BODY))
        _translated("DeleteObject", lambda: self.s3.delete_object(Bucket=self.bucket, Key=key))

    def put_staged(
        self,
        key: str,
        stream: IO[bytes],
        size: int,
        content_type: str,
        metadata: dict[str, str],
        path: str | None = None,
    ) -> None:
        """Put a photo's verified bytes: one PUT under 16 MiB, else a multipart upload whose buffers
        stay bounded (:data:`_TRANSFER`).

        :param stream: the bytes, from their start; ``size`` of them
        :param path: the file on local disk that holds them, if any: a multipart upload then
            reads each part from it as it is sent (from ``stream`` it would hold parts in memory)
        """
        extra = {"ContentType": content_type, "Metadata": metadata}
        if size < _TRANSFER.multipart_threshold:
            # One PUT: boto3's transfer manager starts threads and futures for every file. Bytes
            # in memory already (no file holds them) are kept a while.
            body = stream if path is not None else stream.read(size)
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentLength=size, **extra)
            if isinstance(body, bytes):
                self._recent.keep(key, body)
        elif path is not None:
            self.s3.upload_file(path, self.bucket, key, ExtraArgs=extra, Config=_TRANSFER)
        else:
            self.s3.upload_fileobj(stream, self.bucket, key, ExtraArgs=extra, Config=_TRANSFER)

    def open_object(self, key: str) -> IO[bytes]:
        """The object's bytes as a stream read from S3 as it is consumed (never held whole), or
        from memory when this process put it lately (:class:`_Recent`)."""
        data = self._recent.take(key)
        if data is not None:
            return io.BytesIO(data)
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]  # type: ignore[no-any-return]

    def put_json(self, key: str, payload: Any) -> None:
        body = json.dumps(payload, indent=1, default=_default, ensure_ascii=False).encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")

    def get_json(self, key: str) -> Any | None:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return json.loads(response["Body"].read())

    def delete(self, key: str) -> None:
        """Delete one object (none there is no error)."""
        self._recent.take(key)
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def put_text(self, key: str, text: str, content_type: str = "text/markdown") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode(), ContentType=content_type)

    def head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)  # type: ignore[no-any-return]
        except ClientError as exc:
            if _missing(exc):
                return None
            raise

    def published(self, builder_id: str, buildpass_project_id: str, photo_id: str) -> bool:
        """True when the ledger says the photo is in BuildPass (not merely being created)."""
        entry = self.get_json(self.layout.ledger(builder_id, buildpass_project_id, photo_id))
        return isinstance(entry, dict) and entry.get("state") == LedgerState.CREATED

    def first_attempt(self, marker: str) -> bool:
        """True the first time a step asks with this marker key (the marker is then written)."""
        if self.head(marker) is not None:
            return False
        self.put_json(marker, {"at": datetime.now(UTC)})
        return True

    def ledger_ids(self, builder_id: str, buildpass_project_id: str) -> set[str]:
        """Photo ids with a ledger entry in that project, any state: a listing, not a read per photo.

        An entry's state still needs :meth:`published`; this narrows down which entries to read.
        """
        prefix = self.layout.ledger_prefix(builder_id, buildpass_project_id)
        ids: set[str] = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents") or []:
                name = str(item.get("Key", ""))[len(prefix) :]
                if name.endswith(".json") and "/" not in name:
                    ids.add(name[: -len(".json")])
        return ids

    def write_manifest(self, key: str, photos: list[AccPhoto]) -> None:
        """One manifest part in Parquet, built by pyarrow's JSON reader: a task never imports
        pandas (its import alone costs more CPU than copying an hourly window's photos)."""
        import pyarrow.json as pa_json
        import pyarrow.parquet as pq

        lines = "".join(json.dumps(_manifest_row(p)) + "\n" for p in photos).encode()
        schema = _manifest_schema()
        if lines:
            read = pa_json.ReadOptions(use_threads=False, block_size=max(len(lines), 1 << 20))
            parse = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
            table = pa_json.read_json(io.BytesIO(lines), read_options=read, parse_options=parse)
        else:
            table = schema.empty_table()
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=buffer.getvalue(), ContentType="application/vnd.apache.parquet"
        )

    def read_manifests(self, keys: Iterable[str]) -> list[AccPhoto]:
        """A batch's photos, from its manifest parts in order."""
        return [photo for key in keys for photo in self.read_manifest(key)]

    def read_manifest(self, key: str) -> list[AccPhoto]:
        """One manifest part, ours or one written by pandas before (times in ns), read with
        pyarrow alone: times go through integers, as pyarrow hands zoned times over by pandas."""
        import pyarrow.parquet as pq

        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        table = pq.ParquetFile(io.BytesIO(body)).read(columns=MANIFEST_COLUMNS)  # read_table imports pandas
        created, taken = (_moments(table.column(name)) for name in ("created_at", "taken_at"))
        rows = table.select(["id", "project_id", "title", "description", "size", "media_type"]).to_pylist()
        return [
            AccPhoto(
                id=row["id"],
                project_id=row["project_id"],
                title=row["title"] or "",
                description=row["description"] or "",
                size=row["size"],
                media_type=row["media_type"],
                created_at=_required(created[i], key, row["id"]),
                taken_at=taken[i],
                deleted_at=None,
            )
            for i, row in enumerate(rows)
        ]


def _manifest_schema() -> Any:
    import pyarrow as pa

    text, moment = pa.string(), pa.timestamp("us", tz="UTC")
    types = {"size": pa.int64(), "created_at": moment, "taken_at": moment}
    return pa.schema([(name, types.get(name, text)) for name in MANIFEST_COLUMNS])


def _manifest_row(photo: AccPhoto) -> dict[str, Any]:
    row = {name: getattr(photo, name) for name in MANIFEST_COLUMNS}
    for name in ("created_at", "taken_at"):
        row[name] = _utc(row[name]).isoformat() if row[name] is not None else None
    return row


def _moments(column: Any) -> list[datetime | None]:
    """A Parquet time column (any unit, UTC) as aware datetimes, without pyarrow's pandas path."""
    import pyarrow as pa

    micros = column.cast(pa.timestamp("us", tz="UTC"), safe=False).cast(pa.int64()).to_pylist()
    return [_EPOCH + timedelta(microseconds=m) if m is not None else None for m in micros]


def _required(moment: datetime | None, key: str, photo_id: str) -> datetime:
    if moment is None:
        raise StorageError(f"manifest {key}: photo {photo_id} has no created_at", operation="GetObject")
    return moment


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _translated(operation: str, call: Callable[[], object]) -> None:
    """Run one S3 call; its botocore failure becomes our :class:`StorageError`."""
    try:
        call()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        raise StorageError(str(exc), operation=operation, code=code) from exc
    except BotoCoreError as exc:
        raise StorageError(str(exc), operation=operation, unreachable=True) from exc


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def describe_failure(exc: BaseException) -> str:
    """An S3 failure in a few words (its type and S3's error code), never its message: a page
    or a log line may show it."""
    what = type(exc).__name__
    if isinstance(exc, ClientError):
        what += " " + str(exc.response.get("Error", {}).get("Code", ""))
    return what.strip()
