"""The pipeline's configuration: the Airflow Variable ``acc_buildpass_config`` and the run conf."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acc_buildpass.clients.retry import RetryPolicy
from acc_buildpass.errors import ConfigError
from acc_buildpass.models import MEDIA_TYPES, ProjectMapping, Window, parse_time, valid_id
from acc_buildpass.settings import PUBLISH_MODES, VARIABLE

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")
_MEDIA = re.compile(r"[A-Z][A-Z0-9_]{0,63}")  # an ACC mediaType name, listed today or not


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the Variable may set; every key but the bucket and projects has a default.

    :param batch_size: photos per staging/publishing batch and per manifest part: each task's fixed
        cost (its process, Airflow's start, an S3 client, sign-ins) is about a second of CPU, so a
        batch should take much longer than that

    :param max_batches: a big window's batches (its mapped copy tasks) at most: about one per task
        slot, since each task overlaps its own downloads and uploads (batches grow to fit)
    :param upload_chunk: photos per ``attachments/bulk-upload`` request
    :param upload_chunk_bytes: bytes per bulk-upload request, whichever bound comes first
    """

    staging_bucket: str
    projects: tuple[ProjectMapping, ...]
    staging_prefix: str = "acc-photos"
    media_types: tuple[str, ...] = ("NORMAL", "INFRARED", "PHOTOSPHERE")
    publish_mode: str = "bulk"
    batch_size: int = 500
    max_batches: int = 4
    upload_chunk: int = 25
    upload_chunk_bytes: int = 64 * 1024 * 1024
    download_threads: int = 4
    upload_threads: int = 2
    folder_name: str = "Autodesk Construction Cloud"
    source_app: str = "Autodesk Construction Cloud"
    acc_conn_id: str = "acc_default"
    buildpass_conn_id: str = "buildpass_default"
    staging_conn_id: str = "acc_buildpass_staging"
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_variable(cls, raw: Any) -> PipelineConfig:
        """:raises ConfigError: one line that says what to fix"""
        where = f"Variable {VARIABLE}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a JSON object, got {type(raw).__name__}")
        bucket = raw.get("staging_bucket")
        if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
            raise ConfigError(
                f"{where}: 'staging_bucket' is missing or not a valid bucket name: set it to your S3 bucket"
            )
        prefix = str(raw.get("staging_prefix", "acc-photos")).strip("/")
        if not _PREFIX.fullmatch(prefix) or ".." in prefix.split("/"):
            raise ConfigError(f"{where}: 'staging_prefix' {prefix!r} may hold letters, digits, '_', '-', '.', '/' only")
        projects_raw = raw.get("projects")
        if not isinstance(projects_raw, list) or not projects_raw:
            raise ConfigError(f"{where}: 'projects' must be a non-empty list of project mappings")
        projects = tuple(_mapping(where, i, p) for i, p in enumerate(projects_raw))
        seen: set[str] = set()
        for p in projects:
            if p.acc_project_id in seen:
                raise ConfigError(f"{where}: ACC project {p.acc_project_id} is mapped twice; map it once")
            seen.add(p.acc_project_id)
        media = _media_types(where, raw.get("media_types", list(cls.media_types)))
        mode = raw.get("publish_mode", "bulk")
        if mode not in PUBLISH_MODES:
            raise ConfigError(f"{where}: 'publish_mode' must be one of {', '.join(PUBLISH_MODES)}, got {mode!r}")
        ints = {}
        for name, low, high in (
            ("batch_size", 1, 5000),
            ("max_batches", 1, 1000),
            ("upload_chunk", 1, 100),
            ("upload_chunk_bytes", 1024, 2**34),
            ("download_threads", 1, 32),
            ("upload_threads", 1, 16),
        ):
            value = raw.get(name, getattr(cls, name))
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"{where}: {name!r} must be a whole number from {low} to {high}, got {value!r}")
            ints[name] = value
        retry_raw = raw.get("retry") or {}
        if not isinstance(retry_raw, dict):
            raise ConfigError(f"{where}: 'retry' must be an object")
        return cls(
            staging_bucket=bucket,
            staging_prefix=prefix,
            projects=projects,
            media_types=media,
            publish_mode=mode,
            folder_name=str(raw.get("folder_name") or cls.folder_name),
            source_app=str(raw.get("source_app") or cls.source_app),
            acc_conn_id=str(raw.get("acc_conn_id") or cls.acc_conn_id),
            buildpass_conn_id=str(raw.get("buildpass_conn_id") or cls.buildpass_conn_id),
            staging_conn_id=str(raw.get("staging_conn_id") or cls.staging_conn_id),
            retry=RetryPolicy.from_config(retry_raw),
            **ints,
        )


def _mapping(where: str, index: int, raw: Any) -> ProjectMapping:
    at = f"{where}: projects[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{at} must be an object")
    values: dict[str, str] = {}
    for key in ("acc_project_id", "builder_id", "buildpass_project_id"):
        value = raw.get(key)
        if not valid_id(value):
            raise ConfigError(f"{at}: {key!r} is missing or not a valid id (got {value!r})")
        values[key] = str(value)
    folder = raw.get("buildpass_folder_id")
    if folder is not None and not valid_id(folder):
        raise ConfigError(f"{at}: 'buildpass_folder_id' must be an id or null (got {folder!r})")
    return ProjectMapping(buildpass_folder_id=folder, **values)


def resolve_window(
    conf: dict[str, Any] | None, interval_start: datetime | None, interval_end: datetime | None
) -> Window:
    """The run conf's window when given, else the run's data interval.

    :raises ConfigError: a bad or empty window
    """
    conf = conf or {}
    start_raw, end_raw = conf.get("window_start"), conf.get("window_end")
    if (start_raw is None) != (end_raw is None):
        raise ConfigError("run conf: give both 'window_start' and 'window_end' (ISO 8601), or neither")
    try:
        if start_raw is not None:
            start, end = parse_time(start_raw), parse_time(end_raw)
        else:
            if interval_start is None or interval_end is None:
                raise ConfigError("no data interval and no window in the run conf")
            start, end = interval_start, interval_end
        return Window(start, end)
    except ValueError as exc:
        raise ConfigError(f"invalid window: {exc}; give ISO 8601 'window_start' < 'window_end'") from None


def _media_types(where: str, media: object) -> tuple[str, ...]:
    """The mediaTypes to copy: any ACC name, listed today or not (a newer one may be opted in)."""
    if not isinstance(media, list) or not media or not all(isinstance(m, str) and _MEDIA.fullmatch(m) for m in media):
        raise ConfigError(
            f"{where}: 'media_types' must be a list of ACC mediaType names (listed today: "
            f"{', '.join(MEDIA_TYPES)}; a newer one in capitals, digits and '_' may be added)"
        )
    return tuple(media)
