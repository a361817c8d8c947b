"""Client of the BuildPass public API (client-credentials sign-in)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Unpack

import requests

from acc_buildpass.clients import endpoints, http, retry
from acc_buildpass.clients.multipart import FilePart, MultipartBody
from acc_buildpass.clients.tokens import FileTokenStore, TokenState, fingerprint
from acc_buildpass.errors import ApiError, AuthError

log = logging.getLogger(__name__)

AUDIENCE = "https://api.buildpass.global"
API_VERSION = "v1"
SCOPES = "read:photos write:photos"


def token_store_key(base_url: str, client_id: str, client_secret: str, scope: str = SCOPES) -> str:
    """What a BuildPass token is stored under: host, client id, scope and the secret's fingerprint
    (never the secret), so a changed secret or scope never reuses a token issued for the old one."""
    return "|".join((base_url.rstrip("/"), client_id, scope, fingerprint(client_secret)))


@dataclass(frozen=True)
class Attachment:
    key: str
    type: str
    region_id: str

    def as_reference(self) -> dict[str, str]:
        return {"key": self.key, "regionId": self.region_id, "type": self.type}


@dataclass(frozen=True)
class BuildPassPhoto:
    id: str
    project_id: str | None
    folder_id: str | None
    file_name: str
    key: str | None
    external_source_id: str | None
    description: str | None
    captured_at: str | None
    content_type: str | None = None
    file_size: int | None = None  # ``fileSize`` (a string in BuildPass's answers), when it is a byte count

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> BuildPassPhoto:
        if not isinstance(raw.get("id"), str):
            raise ApiError(f"photo object without an id: {str(raw)[:200]}")
        metadata = raw["metadata"] if isinstance(raw.get("metadata"), dict) else {}
        return cls(
            id=raw["id"],
            project_id=raw.get("projectId"),
            folder_id=raw.get("folderId"),
            file_name=raw.get("fileName") or "",
            key=raw.get("key"),
            external_source_id=raw.get("externalSourceId") or metadata.get("externalSourceId"),
            description=raw.get("description"),
            captured_at=raw.get("photoTakenDate") or raw.get("capturedAt"),
            content_type=raw.get("contentType") if isinstance(raw.get("contentType"), str) else None,
            file_size=_byte_count(raw.get("fileSize")),
        )


def _byte_count(value: Any) -> int | None:
    """A size BuildPass gives as a string or a number; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _in_file_order(files: list[FilePart], uploads: list[Any]) -> list[Any]:
    """The bulk-upload's answers in the order of ``files``.

    The order of ``uploads`` is not documented: each answer is matched to its file by the
    ``fileName`` it gives back when every answer names a file of its own, else by position
    when none names another file than the one at its position.

    :raises ApiError: the answers name files, but not one each (matching by position could
        give a photo another photo's bytes)
    """
    names = [f.filename for f in files]
    given = [u.get("fileName") if isinstance(u, dict) else None for u in uploads]
    if len(set(names)) == len(names) and sorted(map(str, given)) == sorted(names):
        by_name = dict(zip(given, uploads, strict=True))
        return [by_name[name] for name in names]
    if all(name is None or name == names[i] for i, name in enumerate(given)):
        return uploads
    raise ApiError(f"bulk-upload answered file names {given[:5]} that do not match the files sent {names[:5]}")


# Keys of a listing's reply that say more photos may follow (BuildPass documents no paging).
_PAGING_KEYS = ("next", "nextCursor", "cursor", "nextPageToken", "nextPage", "hasMore", "has_more", "pagination")


@dataclass(frozen=True)
class PhotoListing:
    """A project's photos as one ``GET /photos`` returned them, and any sign that more may follow."""

    photos: list[BuildPassPhoto]
    paging_hint: str | None = None  # e.g. ``reply key 'next'``, ``Link header rel=next``


@dataclass(frozen=True)
class Folder:
    id: str
    name: str
    project_id: str | None
    created_at: str


@dataclass(frozen=True)
class UpsertResult:
    folder_id: str | None
    created_attachment_ids: list[str] = field(default_factory=list)
    skipped_external_source_ids: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # externalSourceId -> error


class BuildPassClient(http.ApiClient):
    """BuildPass API for one OAuth client.

    Every public call may also raise what any call raises: ``AuthError`` (credentials refused),
    ``RateLimited``, ``ServerError`` or ``TransportError`` once the policy's retries are spent,
    ``ApiError`` for an answer of the wrong shape.

    :param region_id: sent as ``X-BuildPass-Region-Id`` when given (BuildPass assumes au1)
    :param scope: the scopes asked for on the token call
    :param token_store: where the access token is shared with the other task processes (built
        with ``kind=tokens.BUILDPASS`` and ``token_store_key``); without one, each client asks
        for its own token
    :raises ValueError: a host not to be trusted with the client secret (see ``http.ApiClient``)
    """

    default_base_url = endpoints.BUILDPASS_BASE_URL
    host_name = "BuildPass host"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        region_id: str | None = None,
        scope: str = SCOPES,
        token_store: FileTokenStore | None = None,
        **options: Unpack[http.ClientOptions],
    ) -> None:
        super().__init__(base_url, client_id, client_secret, **options)
        self.region_id = region_id
        self.scope = scope
        self._store = token_store
        # A stored token is used only if it was issued for these credentials, whatever the file's name.
        self._store_seed = fingerprint(token_store_key(self.base_url, client_id, client_secret, scope))
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = threading.Lock()
        # What the last response said of the rate limit window (shared by our threads).
        self._remaining: int | None = None
        self._rate_lock = threading.Lock()
        self._limit: int | None = None  # X-RateLimit-Limit, once BuildPass said it
        self._passed: float | None = None  # the reset of the window we last waited out (its late answers are ignored)
        self._reset_at: float | None = None  # when the window we count down resets; None: not known yet

    # -- sign-in ---------------------------------------------------------------------------

    def _access_token(self, refused: str | None = None) -> str:
        """A valid access token: the one in hand, else one another process stored, else a new one.

        :param refused: a token BuildPass answered 401 to; never used again
        :raises ConfigError: the token store cannot be read with the configured key
        """
        with self._lock:
            if self._token and self._token != refused and self._token_expires - 60 > time.time():
                return self._token
            if self._store is None:
                return self._new_token()
            with self._store.lock():
                stored = self._stored_token(self._store, refused)
                if stored is not None:
                    return stored
                token = self._new_token()
                # Stored while the lock is held: the processes waiting for it use this one.
                self._store.save(
                    TokenState(
                        seed=self._store_seed,
                        access_token=token,
                        access_expires_at=self._token_expires,
                        updated_at=time.time(),
                    )
                )
                log.info("BuildPass access token stored in %s for the other task processes", self._store.path)
                return token

    def _stored_token(self, store: FileTokenStore, refused: str | None) -> str | None:
        """The stored token, when it was issued for these credentials, is valid and was not refused
        (the caller holds the store's lock); kept in memory and registered with the log masker."""
        state = store.load()
        if state is None or state.seed != self._store_seed or not state.access_valid():
            return None
        token = state.access_token
        if token is None or token == refused:
            return None
        self._on_secret(token)
        self._token, self._token_expires = token, state.access_expires_at
        return token

    def _new_token(self) -> str:
        """Ask BuildPass for a token (the caller holds ``self._lock``) and keep it in memory."""

        def once() -> dict[str, Any]:
            self._respect_rate_limit()
            response = http.request(
                self.session,
                "POST",
                self.base_url + endpoints.BUILDPASS_TOKEN,
                # "Required on every call": the token call too, whatever a server lets pass today.
                headers={"X-BuildPass-Api-Version": API_VERSION},
                json={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                    "audience": AUDIENCE,
                    "scope": self.scope,
                },
                retry_after=self._note_rate_limit,
            )
            self._note_rate_limit(response)
            return http.json_body(response)

        payload = retry.call(self.policy, once, describe="BuildPass sign-in")
        token = payload.get("access_token")
        if not isinstance(token, str):
            raise ApiError("BuildPass token response has no access_token")
        self._on_secret(token)
        self._token = token
        self._token_expires = time.time() + float(payload.get("expires_in", 3600))
        return token

    # -- plumbing --------------------------------------------------------------------------

    def _note_rate_limit(self, response: requests.Response) -> float | None:
        """Remember the window; return seconds until it resets (used for 429 waits)."""
        remaining = response.headers.get("X-RateLimit-Remaining")
        reset_at = _reset_time(response.headers.get("X-RateLimit-Reset"))
        limit = response.headers.get("X-RateLimit-Limit", "")
        with self._rate_lock:
            if limit.isdigit():
                self._limit = int(limit)
            stale = reset_at is not None and self._passed is not None and reset_at <= self._passed + 1
            if remaining is not None and remaining.isdigit() and not stale:
                # Within the window we count down, the server's figure lags behind what our threads
                # have sent already: take the lower. A later window starts from the server's.
                newer = reset_at is not None and self._reset_at is not None and reset_at > self._reset_at + 1
                if self._remaining is None or newer:
                    self._remaining = int(remaining)
                else:
                    self._remaining = min(self._remaining, int(remaining))
                if newer or self._reset_at is None:
                    self._reset_at = reset_at
        return max(reset_at - time.time(), 0.0) if reset_at else None

    def _respect_rate_limit(self) -> None:
        """Take a slot of the rate-limit window, counted down here as our threads send; when the
        window is (nearly) used up, wait for its reset instead of a 429 (the other threads wait
        behind this one)."""
        # A tenth of the window is left to requests that other processes behind the same address
        # may have in flight: waiting only at 0 lets them run into 429s.
        reserve = max(1, (self._limit or 0) // 10)
        with self._rate_lock:
            if self._remaining is not None and self._remaining < reserve:
                wait = (self._reset_at or 0.0) - time.time()
                if 0 < wait <= self.policy.max_retry_after:
                    log.info("BuildPass rate limit window used up; waiting %.1f s for it to reset", wait)
                    time.sleep(wait)
                # A new window, counted down from its limit when known; its reset comes with its first answer.
                self._remaining, self._reset_at, self._passed = self._limit, None, self._reset_at
            if self._remaining is not None:
                self._remaining -= 1

    def _call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool = True,
        body_factory: Callable[[], MultipartBody] | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        url = self.base_url + path

        def send(token: str) -> requests.Response:
            headers = {"Authorization": f"Bearer {token}", "X-BuildPass-Api-Version": API_VERSION}
            if self.region_id:
                headers["X-BuildPass-Region-Id"] = self.region_id
            extra = dict(kwargs)
            body = None
            if body_factory is not None:
                body = body_factory()
                headers["Content-Type"] = body.content_type
                extra["data"] = body
            self._respect_rate_limit()
            try:
                response = http.request(
                    self.session, method, url, headers=headers, retry_after=self._note_rate_limit, **extra
                )
            finally:
                if body is not None:
                    body.close()
            self._note_rate_limit(response)
            return response

        def once() -> requests.Response:
            token = self._access_token()
            try:
                return send(token)
            except AuthError as exc:
                if exc.status != 401:
                    raise
                return send(self._access_token(refused=token))

        return retry.call(
            self.policy,
            once,
            describe=f"BuildPass {method} {path}",
            retry_if=retry.is_retryable if idempotent else retry.is_safe_to_replay,
        )

    # -- endpoints -------------------------------------------------------------------------

    def upload_attachments(self, builder_id: str, files: list[FilePart]) -> list[Attachment]:
        """Upload image bytes, one request for all of ``files`` (``attachments/bulk-upload``).

        Replaying an upload only leaves an unused attachment behind, so it is retried freely.
        Each file's ``filename`` must be unique in the request: it matches the answers to the files.

        :raises ApiError: the answer does not list one upload per file, or names other files
        """

        def body() -> MultipartBody:
            fields = [(f"type:{i}", "attachment") for i in range(len(files))]
            parts = [FilePart(f"file:{i}", f.filename, f.content_type, f.size, f.open) for i, f in enumerate(files)]
            return MultipartBody(fields, parts)

        path = endpoints.path(endpoints.BUILDPASS_BULK_UPLOAD, builder_id=builder_id)
        response = self._call("POST", path, body_factory=body)
        uploads = http.json_body(response).get("uploads")
        if not isinstance(uploads, list) or len(uploads) != len(files):
            raise ApiError(f"bulk-upload answered {len(uploads or [])} uploads for {len(files)} files")
        return [self._attachment(u) for u in _in_file_order(files, uploads)]

    def upload_attachment(self, builder_id: str, file: FilePart) -> Attachment:
        """Upload one file's bytes (``attachments/upload``), retried freely as the bulk upload is.

        :raises ApiError: the answer names no attachment key
        """

        def body() -> MultipartBody:
            return MultipartBody(
                [("type", "attachment")], [FilePart("file", file.filename, file.content_type, file.size, file.open)]
            )

        path = endpoints.path(endpoints.BUILDPASS_UPLOAD, builder_id=builder_id)
        response = self._call("POST", path, body_factory=body)
        return self._attachment(http.json_body(response))

    def _attachment(self, raw: Any) -> Attachment:
        if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
            raise ApiError(f"attachment answer without a key: {str(raw)[:200]}")
        return Attachment(
            key=raw["key"],
            type=raw.get("type") or "attachment",
            region_id=raw.get("regionId") or self.region_id or "au1",
        )

    def bulk_upsert(
        self,
        builder_id: str,
        *,
        source_id: str,
        source_app: str,
        project_id: str,
        folder_id: str | None,
        folder_name: str | None,
        photos: list[dict[str, Any]],
    ) -> UpsertResult:
        """Create photos idempotently per photo ``externalSourceId`` (repeats are skipped).

        :raises BadRequest: BuildPass refused the request as a whole (photos it refuses one by
            one are in the result's ``failed``)
        """
        body: dict[str, Any] = {
            "externalSourceId": source_id,
            "sourceApp": source_app,
            "projectId": project_id,
            "photos": photos,
        }
        if folder_id:
            body["folderId"] = folder_id
        if folder_name:
            body["folderName"] = folder_name
        path = endpoints.path(endpoints.BUILDPASS_BULK_UPSERT, builder_id=builder_id)
        payload = http.json_body(self._call("POST", path, json=body))
        failed: dict[str, str] = {}
        for entry in payload.get("failedPhotos") or []:
            if isinstance(entry, dict):
                failed[str(entry.get("externalSourceId"))] = str(entry.get("error") or entry.get("message") or entry)
        return UpsertResult(
            folder_id=payload.get("folderId"),
            created_attachment_ids=list(payload.get("createdAttachmentIds") or []),
            skipped_external_source_ids=[str(x) for x in payload.get("skippedExternalSourceIds") or []],
            failed=failed,
        )

    def create_photo(self, builder_id: str, photo: dict[str, Any]) -> BuildPassPhoto:
        """``POST /photos``. Not idempotent: replayed only when the server cannot have acted.

        :raises TransportError: with ``sent`` True when the outcome is unknown
        :raises BadRequest: BuildPass refused the photo
        """
        path = endpoints.path(endpoints.BUILDPASS_PHOTOS, builder_id=builder_id)
        response = self._call("POST", path, idempotent=False, json=photo)
        return BuildPassPhoto.from_api(http.json_body(response))

    def list_photos(self, builder_id: str, project_id: str, folder_id: str | None = None) -> list[BuildPassPhoto]:
        """The photos of a project (of one of its folders when given).

        :raises NotFound: no such builder or project
        """
        return self.photo_listing(builder_id, project_id, folder_id).photos

    def photo_listing(self, builder_id: str, project_id: str, folder_id: str | None = None) -> PhotoListing:
        """The photos of a project (or folder), with any paging hint the reply carries: no paging is
        documented, so a hint means the listing may be incomplete and nothing here follows it.

        :raises NotFound: no such builder or project
        """
        params = {"projectId": project_id}
        if folder_id:
            params["folderId"] = folder_id
        path = endpoints.path(endpoints.BUILDPASS_PHOTOS, builder_id=builder_id)
        response = self._call("GET", path, params=params)
        payload = http.json_body(response)
        photos = [BuildPassPhoto.from_api(p) for p in payload.get("data") or [] if isinstance(p, dict)]
        hints = [f"reply key {k!r}" for k in _PAGING_KEYS if payload.get(k) not in (None, False, "", [], {})]
        if "next" in (response.links or {}):
            hints.append("Link header rel=next")
        return PhotoListing(photos, "; ".join(hints) or None)

    def update_photo(self, builder_id: str, photo_id: str, changes: dict[str, Any]) -> BuildPassPhoto:
        """Patch the fields given (a PATCH of the same fields twice is the same PATCH).

        :raises NotFound: no such photo
        :raises BadRequest: BuildPass refused a field
        """
        path = endpoints.path(endpoints.BUILDPASS_PHOTO, builder_id=builder_id, photo_id=photo_id)
        response = self._call("PATCH", path, json=changes)
        return BuildPassPhoto.from_api(http.json_body(response))

    def list_folders(self, builder_id: str, project_id: str) -> list[Folder]:
        """The photo folders of a project.

        :raises NotFound: no such builder or project
        """
        path = endpoints.path(endpoints.BUILDPASS_FOLDERS, builder_id=builder_id)
        payload = http.json_body(self._call("GET", path, params={"projectId": project_id}))
        return [self._folder(f) for f in payload.get("data") or [] if isinstance(f, dict)]

    def get_folder(self, builder_id: str, folder_id: str) -> Folder:
        """One photo folder.

        :raises NotFound: no such folder
        """
        path = endpoints.path(endpoints.BUILDPASS_FOLDER, builder_id=builder_id, folder_id=folder_id)
        return self._folder(http.json_body(self._call("GET", path)))

    def create_folder(self, builder_id: str, project_id: str, name: str) -> Folder:
        """A new folder. Not idempotent: replayed only when the server cannot have acted.

        :raises TransportError: with ``sent`` True when the outcome is unknown
        :raises NotFound: no such builder or project
        """
        path = endpoints.path(endpoints.BUILDPASS_FOLDERS, builder_id=builder_id)
        response = self._call("POST", path, idempotent=False, json={"name": name, "projectId": project_id})
        return self._folder(http.json_body(response))

    def delete_folder(self, builder_id: str, folder_id: str) -> None:
        """Delete a folder.

        :raises NotFound: no such folder
        :raises Conflict: the folder still holds photos
        """
        path = endpoints.path(endpoints.BUILDPASS_FOLDER, builder_id=builder_id, folder_id=folder_id)
        self._call("DELETE", path)

    def sign_in(self) -> None:
        """Fetch a new token: proves the credentials without touching any data.

        Always a token call (a stored token proves nothing of today's secret), and the token store
        is neither read nor written: a Test button on a host without the workers' store still works.

        :raises AuthError: BuildPass refused the client id or secret
        """
        with self._lock:
            self._new_token()

    @staticmethod
    def _folder(raw: dict[str, Any]) -> Folder:
        if not isinstance(raw.get("id"), str):
            raise ApiError(f"folder object without an id: {str(raw)[:200]}")
        return Folder(
            id=raw["id"],
            name=str(raw.get("name") or ""),
            project_id=raw.get("projectId"),
            created_at=str(raw.get("createdAt") or ""),
        )


def _reset_time(reset: str | None) -> float | None:
    """When a rate-limit window resets (epoch seconds), from ``X-RateLimit-Reset``: epoch seconds,
    or seconds from now (the documentation does not say which)."""
    try:
        value = float(reset or "")
    except ValueError:
        return None
    return value if value > 1e9 else time.time() + value
