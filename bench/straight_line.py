"""The floor: a hand-written copy loop with the pipeline's concurrency, and nothing else.

No Airflow, no ledger: page through ACC with signed URLs (50 a page), download each page's photos
with ``download_threads`` threads into memory and, as the pipeline does, put each in object
storage (``stage``), upload them to BuildPass in bulk uploads of 25 with ``upload_threads``
threads, and create them with one bulk-upsert per page. The BuildPass side uses our client (its
multipart body, retry policy and rate-limit pause), so the difference to the pipeline is the
pipeline's own cost: Airflow and bookkeeping.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.clients.multipart import FilePart
from acc_buildpass.mapping import file_name, sniff_content_type, upsert_photo
from acc_buildpass.models import AccPhoto


@dataclass
class Target:
    builder_id: str
    project_id: str
    folder_name: str = "Autodesk Construction Cloud"


def _range(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def copy(
    acc_url: str,
    acc_client: tuple[str, str],
    refresh_token: str,
    bp: BuildPassClient,
    acc_project: str,
    target: Target,
    start: datetime,
    end: datetime,
    *,
    download_threads: int = 4,
    upload_threads: int = 2,
    upload_chunk: int = 25,
    stage: Callable[[AccPhoto, bytes], None] | None = None,
) -> int:
    """Copy [start, end) of one project; returns the number of photos created."""
    session = requests.Session()
    session.trust_env = False
    token = session.post(
        f"{acc_url}/authentication/v2/token",
        auth=acc_client,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": "data:read"},
        timeout=30,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{acc_url}/construction/photos/v1/projects/{acc_project}/photos:filter"
    body: dict[str, Any] = {
        "filter": {"createdAt": f"{_range(start)}..{_range(end)}"},
        "sort": ["createdAt", "asc"],
        "limit": 50,
        "include": ["signedUrls"],
    }
    folder_id: str | None = None
    created = 0
    downloads = requests.Session()
    downloads.trust_env = False

    def fetch(raw: dict[str, Any]) -> tuple[AccPhoto, bytes]:
        response = downloads.get(raw["signedUrls"]["fileUrl"], timeout=120)
        response.raise_for_status()
        photo = AccPhoto.from_api(raw, acc_project)
        if stage is not None:
            stage(photo, response.content)
        return photo, response.content

    with (
        ThreadPoolExecutor(download_threads) as download_pool,
        ThreadPoolExecutor(upload_threads) as upload_pool,
    ):
        while True:
            page = session.post(url, json=body, headers=headers, timeout=60).json()
            rows = [
                r
                for r in page["results"]
                if not r.get("deletedAt")
                and r.get("mediaType") != "VIDEO"
                and start <= AccPhoto.from_api(r, acc_project).created_at < end
            ]
            files = list(download_pool.map(fetch, rows))
            chunks = [files[i : i + upload_chunk] for i in range(0, len(files), upload_chunk)]

            def upload(chunk: list[tuple[AccPhoto, bytes]]) -> list[Any]:
                parts = []
                for photo, data in chunk:
                    kind = sniff_content_type(data[:32]) or "image/jpeg"
                    parts.append(
                        FilePart("file", file_name(photo, kind), kind, len(data), lambda d=data: io.BytesIO(d))
                    )
                return bp.upload_attachments(target.builder_id, parts)

            attachments = [a for result in upload_pool.map(upload, chunks) for a in result]
            entries = []
            for n, ((photo, data), attachment) in enumerate(zip(files, attachments, strict=True)):
                kind = sniff_content_type(data[:32]) or "image/jpeg"
                entries.append(upsert_photo(photo, kind, attachment.as_reference(), n))
            if entries:
                result = bp.bulk_upsert(
                    target.builder_id,
                    source_id=f"acc:{acc_project}",
                    source_app="straight-line",
                    project_id=target.project_id,
                    folder_id=folder_id,
                    folder_name=None if folder_id else target.folder_name,
                    photos=entries,
                )
                folder_id = result.folder_id
                created += len(result.created_attachment_ids)
            next_post = (page.get("pagination") or {}).get("nextPost")
            if not next_post:
                return created
            url, body = next_post["url"], next_post["body"]
