"""The records the steps pass: ACC photos, windows, project mappings, batches and outcomes."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from acc_buildpass.errors import InvalidPhoto

# ACC ids are UUIDs; we accept a little more, but never anything that could walk a path.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# The mediaTypes ACC lists today. Another one is skipped with its reason (never failed) unless the
# Variable's media_types opts it in.
MEDIA_TYPES = ("NORMAL", "INFRARED", "PHOTOSPHERE", "VIDEO")


# The statuses below are stored (outcome JSON, reports, the ledger) and passed as XComs by their
# values: a value never changes. Where two vocabularies share a concept they share its value.


class PhotoStatus(StrEnum):
    """What happened to one photo in one step (extract's verdict, stage, publish)."""

    STAGED = "staged"  # its bytes are in object storage, verified
    PRESENT = "present"  # already in BuildPass: nothing sent
    CREATED = "created"  # created in BuildPass by this step
    SKIPPED = "skipped"  # not copied on purpose (deleted in ACC, a mediaType not copied)
    FAILED = "failed"  # the reason says why


class LedgerState(StrEnum):
    """The ``state`` of a ledger entry."""

    INTENT = "intent"  # single mode: attachments uploaded, the create not yet confirmed
    CREATED = "created"  # the photo is in BuildPass


class ReplayStatus(StrEnum):
    """What came of one photo a window's report lists as failed, after ``replay``."""

    CREATED = PhotoStatus.CREATED.value  # now in BuildPass, created by this replay
    PRESENT = PhotoStatus.PRESENT.value  # already in BuildPass (an earlier replay or run got it there)
    STILL_FAILED = PhotoStatus.FAILED.value  # still failed; the reason says why
    DELETED = "deleted"  # deleted in ACC since: nothing to copy
    SKIPPED = PhotoStatus.SKIPPED.value  # no longer copied under the Variable (e.g. its mediaType)
    NOT_REPLAYABLE = "not_replayable"  # a report entry that names no photo ("*", "batch ...") or an unmapped project


class EditStatus(StrEnum):
    """What ``follow-edits`` did with one copied photo."""

    PATCHED = "patched"
    WOULD_PATCH = "would_patch"  # a dry run's PATCHED
    UNCHANGED = "unchanged"
    DELETED_IN_ACC = "deleted_in_acc"
    FAILED = PhotoStatus.FAILED.value


class CheckStatus(StrEnum):
    """One finding of ``acc-buildpass check``."""

    OK = "OK"
    PROBLEM = "PROBLEM"
    SKIP = "SKIP"


def valid_id(value: object) -> bool:
    return isinstance(value, str) and bool(_ID.fullmatch(value)) and ".." not in value


def parse_time(value: object) -> datetime:
    """ACC timestamps are UTC, with or without ``Z`` or an offset."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """ISO 8601 in UTC with ``Z``, to the millisecond when there are any."""
    value = value.astimezone(UTC)
    if value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Window:
    """A half-open time range [start, end) of ACC ``createdAt``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must carry a time zone")
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after its start {self.start.isoformat()}")

    @property
    def id(self) -> str:
        fmt = "%Y%m%dT%H%M%SZ"
        return f"{self.start.astimezone(UTC).strftime(fmt)}--{self.end.astimezone(UTC).strftime(fmt)}"

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class AccPhoto:
    """One ACC photo as the pipeline needs it."""

    id: str
    project_id: str
    title: str
    description: str
    size: int | None
    media_type: str
    created_at: datetime
    taken_at: datetime | None
    deleted_at: datetime | None
    file_url: str | None = None

    @classmethod
    def from_api(cls, raw: Any, project_id: str) -> AccPhoto:
        """Parse one ``results`` entry.

        :raises InvalidPhoto: naming the photo and what is wrong with the record
        """
        if not isinstance(raw, dict):
            raise InvalidPhoto(None, f"record is a {type(raw).__name__}, not an object")
        photo_id = raw.get("id")
        if not valid_id(photo_id):
            what = "missing" if photo_id is None or photo_id == "" else "not a safe id"
            raise InvalidPhoto(str(photo_id) if photo_id else None, f"invalid id {photo_id!r} ({what}){_found_by(raw)}")
        try:
            created_at = parse_time(raw.get("createdAt"))
        except ValueError as exc:
            raise InvalidPhoto(photo_id, f"createdAt: {exc}") from None
        taken_at = deleted_at = None
        try:
            if raw.get("takenAt"):
                taken_at = parse_time(raw["takenAt"])
        except ValueError as exc:
            raise InvalidPhoto(photo_id, f"takenAt: {exc}") from None
        try:
            if raw.get("deletedAt"):
                deleted_at = parse_time(raw["deletedAt"])
        except ValueError:
            deleted_at = created_at  # a deletion mark we cannot read is still a deletion mark
        size = raw.get("size")
        if not isinstance(size, (int, float)) or isinstance(size, bool) or not size >= 0:
            size = None  # unknown: the transfer is trusted (Content-Length, a whole body, an image)
        media_type = raw.get("mediaType")
        signed = raw.get("signedUrls")
        file_url = signed.get("fileUrl") if isinstance(signed, dict) else None
        return cls(
            id=photo_id,  # type: ignore[arg-type]
            project_id=str(raw.get("projectId") or project_id),
            title=_text(raw.get("title")),
            description=_text(raw.get("description")),
            size=int(size) if size is not None else None,  # 0 too means unknown: see pipeline.stage
            media_type=media_type if isinstance(media_type, str) else "",
            created_at=created_at,
            taken_at=taken_at,
            deleted_at=deleted_at,
            file_url=file_url if isinstance(file_url, str) and file_url else None,
        )


def _found_by(raw: dict[str, Any]) -> str:
    """What an operator can find a record by in ACC when its id is of no use."""
    known = [f"{k} {str(raw[k])[:80]!r}" for k in ("title", "createdAt", "createdBy") if raw.get(k)]
    return f"; {', '.join(known)}" if known else ""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True)
class ProjectMapping:
    """Where one ACC project's photos go."""

    acc_project_id: str
    builder_id: str
    buildpass_project_id: str
    buildpass_folder_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.acc_project_id[:8]}→{self.buildpass_project_id}"


@dataclass(frozen=True)
class Batch:
    index: int
    label: str
    window_start: str
    window_end: str
    acc_project_id: str
    builder_id: str
    buildpass_project_id: str
    folder_id: str | None
    parts: tuple[str, ...]
    count: int

    @property
    def window(self) -> Window:
        return Window(datetime.fromisoformat(self.window_start), datetime.fromisoformat(self.window_end))

    @property
    def mapping(self) -> ProjectMapping:
        return ProjectMapping(self.acc_project_id, self.builder_id, self.buildpass_project_id, self.folder_id)

    @classmethod
    def of(
        cls,
        mapping: ProjectMapping,
        window: Window,
        *,
        index: int,
        label: str,
        folder_id: str | None,
        parts: tuple[str, ...],
        count: int,
    ) -> Batch:
        """A batch of one project mapping's photos in a window."""
        return cls(
            index=index,
            label=label,
            window_start=window.start.isoformat(),
            window_end=window.end.isoformat(),
            acc_project_id=mapping.acc_project_id,
            builder_id=mapping.builder_id,
            buildpass_project_id=mapping.buildpass_project_id,
            folder_id=folder_id,
            parts=parts,
            count=count,
        )

    def to_xcom(self) -> dict[str, Any]:
        data = asdict(self)
        data["parts"] = list(self.parts)
        return data

    @classmethod
    def from_xcom(cls, raw: dict[str, Any]) -> Batch:
        return cls(**{**raw, "parts": tuple(raw["parts"])})


@dataclass(frozen=True)
class Outcome:
    """What happened to one photo in one step."""

    photo_id: str
    status: PhotoStatus
    reason: str = ""
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    reused: bool = False

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Outcome:
        return cls(**{**raw, "status": PhotoStatus(raw["status"])})
