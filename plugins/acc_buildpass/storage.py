"""The one place that knows the object-storage layout: keys, manifests, outcomes, the ledger.

Layout under ``{prefix}/`` (every part an id we validated, never a title):

- ``objects/{acc_project_id}/{photo_id}``: staged image bytes, metadata ``sha256`` and ``size``
- ``windows/{window}/{acc_project_id}/manifest/part-00000.parquet``: eligible photos, in pages
- ``windows/{window}/{acc_project_id}/extract.json``: counts and what was skipped, and why
- ``windows/{window}/batches/{batch:05d}/stage.json`` and ``publish.json``: per-photo outcomes;
  ``publish-attempt.json``: a publish of that batch has begun before
- ``windows/{window}/report.json`` and ``report.md``; ``plan.json``: a plan from the operations DAG
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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from acc_buildpass.errors import ConfigError
from acc_buildpass.models import AccPhoto, Window, valid_id

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

    def ledger(self, builder_id: str, buildpass_project_id: str, photo_id: str) -> str:
        return self._key(
            "ledger",
            _part(builder_id, "builder id"),
            _part(buildpass_project_id, "project id"),
            f"{_part(photo_id, 'photo id')}.json",
        )

    def ledger_prefix(self, builder_id: str, buildpass_project_id: str) -> str:
        return self._key("ledger", _part(builder_id, "builder id"), _part(buildpass_project_id, "project id")) + "/"

    def follow_links(self, builder_id: str, buildpass_project_id: str, acc_project_id: str) -> str:
        return self._key(
            "follow",
            _part(builder_id, "builder id"),
            _part(buildpass_project_id, "project id"),
            f"{_part(acc_project_id, 'project id')}.json",
        )

    def probe(self, token: str) -> str:
        return self._key("check", f"probe-{_part(token, 'probe token')}")


class Store:
    """Small typed reads and writes over one bucket (boto3 client injected)."""

    def __init__(self, s3: Any, layout: Layout) -> None:
        self.s3 = s3
        self.layout = layout

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
        return isinstance(entry, dict) and entry.get("state") == "created"

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
        import pandas as pd  # heavy: only where a manifest is written

        frame = pd.DataFrame(
            [
                {
                    "id": p.id,
                    "project_id": p.project_id,
                    "title": p.title,
                    "description": p.description,
                    "size": p.size,
                    "media_type": p.media_type,
                    "created_at": p.created_at,
                    "taken_at": p.taken_at,
                }
                for p in photos
            ],
            columns=MANIFEST_COLUMNS,
        )
        frame["size"] = frame["size"].astype("Int64")
        for column in ("created_at", "taken_at"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        self.s3.put_object(
            Bucket=self.bucket, Key=key, Body=buffer.getvalue(), ContentType="application/vnd.apache.parquet"
        )

    def read_manifest(self, key: str) -> list[AccPhoto]:
        """One manifest part, read with pyarrow alone: stage and publish tasks never import pandas."""
        import pyarrow.parquet as pq

        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        rows = pq.read_table(io.BytesIO(body), columns=MANIFEST_COLUMNS).to_pylist()
        return [
            AccPhoto(
                id=row["id"],
                project_id=row["project_id"],
                title=row["title"] or "",
                description=row["description"] or "",
                size=row["size"],
                media_type=row["media_type"],
                created_at=_utc(row["created_at"]),
                taken_at=_utc(row["taken_at"]) if row["taken_at"] is not None else None,
                deleted_at=None,
            )
            for row in rows
        ]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


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
