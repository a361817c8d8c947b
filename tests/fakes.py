"""Stand-ins the unit tests share: an in-memory S3 for the Store, and a stub ACC client.

A stub stands in only where the step's own logic is what a test looks at; where the API's
behaviour matters, tests use the emulators in include/sandbox.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from acc_buildpass.errors import Gone, InvalidPhoto, NotFound
from acc_buildpass.models import AccPhoto
from botocore.exceptions import ClientError, EndpointConnectionError


@dataclass
class StoredObject:
    body: bytes
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


class MemoryS3:
    """The boto3 S3 client calls the Store makes, over a dict keyed by ``bucket/key``.

    :param page: keys per page of a ``list_objects_v2`` listing
    ``calls`` counts each operation by its S3 name; ``refuse`` makes an operation answer with an
    S3 error code; ``unreachable`` names operations that get no answer at all.
    """

    def __init__(self, page: int = 1000) -> None:
        self.objects: dict[str, StoredObject] = {}
        self.page = page
        self.calls: Counter[str] = Counter()
        self.refuse: dict[str, str] = {}
        self.unreachable: set[str] = set()
        self.transfer_configs: list[Any] = []

    @property
    def writes(self) -> int:
        return self.calls["PutObject"] + self.calls["UploadFileobj"] + self.calls["UploadFile"]

    @property
    def gets(self) -> int:
        return self.calls["GetObject"]

    def _call(self, operation: str) -> None:
        self.calls[operation] += 1
        if operation in self.unreachable:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1/s3")
        if operation in self.refuse:
            raise ClientError({"Error": {"Code": self.refuse[operation], "Message": "refused"}}, operation)

    def _get(self, bucket: str, key: str, operation: str) -> StoredObject:
        found = self.objects.get(f"{bucket}/{key}")
        if found is None:
            code = "404" if operation == "HeadObject" else "NoSuchKey"
            raise ClientError({"Error": {"Code": code}}, operation)
        return found

    def put_object(
        self,
        *,
        Bucket: str,
        Key: str,
        Body: bytes | IO[bytes],
        ContentType: str | None = None,
        Metadata: dict[str, str] | None = None,
        **_: Any,
    ) -> None:
        self._call("PutObject")
        body = Body if isinstance(Body, bytes) else Body.read()
        self.objects[f"{Bucket}/{Key}"] = StoredObject(body, ContentType, dict(Metadata or {}))

    def upload_fileobj(
        self, Fileobj: IO[bytes], Bucket: str, Key: str, ExtraArgs: dict[str, Any] | None = None, Config: Any = None
    ) -> None:
        self._call("UploadFileobj")
        self.transfer_configs.append(Config)
        extra = ExtraArgs or {}
        self.objects[f"{Bucket}/{Key}"] = StoredObject(
            Fileobj.read(), extra.get("ContentType"), dict(extra.get("Metadata") or {})
        )

    def upload_file(
        self, Filename: str, Bucket: str, Key: str, ExtraArgs: dict[str, Any] | None = None, Config: Any = None
    ) -> None:
        self._call("UploadFile")
        self.transfer_configs.append(Config)
        extra = ExtraArgs or {}
        with open(Filename, "rb") as source:
            body = source.read()
        self.objects[f"{Bucket}/{Key}"] = StoredObject(
            body, extra.get("ContentType"), dict(extra.get("Metadata") or {})
        )

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self._call("GetObject")
        return {"Body": io.BytesIO(self._get(Bucket, Key, "GetObject").body)}

    def head_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self._call("HeadObject")
        found = self._get(Bucket, Key, "HeadObject")
        return {"ContentLength": len(found.body), "ContentType": found.content_type, "Metadata": found.metadata}

    def delete_object(self, *, Bucket: str, Key: str) -> None:
        self._call("DeleteObject")
        self.objects.pop(f"{Bucket}/{Key}", None)

    def head_bucket(self, *, Bucket: str) -> None:
        self._call("HeadBucket")

    def get_paginator(self, name: str) -> Any:
        assert name == "list_objects_v2"
        s3 = self

        class Paginator:
            def paginate(self, *, Bucket: str, Prefix: str) -> Iterator[dict[str, Any]]:
                s3._call("ListObjectsV2")
                keys = sorted(k[len(Bucket) + 1 :] for k in s3.objects if k.startswith(f"{Bucket}/{Prefix}"))
                for i in range(0, len(keys), s3.page):
                    yield {"Contents": [{"Key": k} for k in keys[i : i + s3.page]]}

        return Paginator()


class StubAcc:
    """An ACC client that lists the records it is given, those created in the range asked for
    (records that cannot be read always), in pages of ``page`` reported to ``on_page``.

    ``listings`` records each listing asked for: (project id, from, to).
    :param missing: ACC project ids ``check_project`` answers 404 for
    """

    def __init__(self, items: list[AccPhoto | InvalidPhoto], *, page: int = 50, missing: set[str] | None = None):
        self.items = items
        self.page = page
        self.missing = missing or set()
        self.listings: list[tuple[str, datetime, datetime]] = []

    def iter_photos(
        self,
        project_id: str,
        created_from: datetime,
        created_to: datetime,
        on_page: Callable[[int], None] | None = None,
    ) -> Iterator[AccPhoto | InvalidPhoto]:
        self.listings.append((project_id, created_from, created_to))
        listed = [i for i in self.items if isinstance(i, InvalidPhoto) or created_from <= i.created_at < created_to]
        for start in range(0, len(listed), self.page):
            if on_page is not None:
                on_page(len(listed[start : start + self.page]))
            yield from listed[start : start + self.page]

    def check_project(self, project_id: str) -> None:
        if project_id in self.missing:
            raise NotFound("request refused", status=404)

    def photos_by_id(self, project_id: str, photo_ids: list[str]) -> dict[str, AccPhoto]:
        wanted = set(photo_ids)
        return {i.id: i for i in self.items if isinstance(i, AccPhoto) and i.id in wanted}

    def get_photo(self, project_id: str, photo_id: str) -> AccPhoto:
        found = self.photos_by_id(project_id, [photo_id]).get(photo_id)
        if found is None:
            raise NotFound("no such photo", status=404)
        if found.deleted_at is not None:
            raise Gone("deleted", status=410)
        return found
