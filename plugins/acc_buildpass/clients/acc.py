"""Client of Autodesk Construction Cloud's Photos API, signed in with a three-legged token."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import IO, Any

import requests

from acc_buildpass import http, retry
from acc_buildpass.errors import (
    ApiError,
    AuthError,
    BadRequest,
    Gone,
    InvalidPhoto,
    NotFound,
    RefreshTokenRejected,
    SignedUrlExpired,
    TransportError,
)
from acc_buildpass.records import AccPhoto
from acc_buildpass.tokens import FileTokenStore, TokenState, fingerprint

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://developer.api.autodesk.com"
TOKEN_PATH = "/authentication/v2/token"  # noqa: S105 (a path, not a secret)
PHOTOS_FILTER_PATH = "/construction/photos/v1/projects/{project_id}/photos:filter"
PHOTO_PATH = "/construction/photos/v1/projects/{project_id}/photos/{photo_id}"
PAGE_LIMIT = 50  # the API caps pages at 50
SCOPE = "data:read"
_DOWNLOAD_CHUNK = 1024 * 1024


def _range_time(moment: datetime) -> str:
    # Autodesk's examples carry no zone designator; their timestamps are UTC.
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class AccClient:
    """ACC Photos API.

    :param token_store: where rotated refresh tokens (and the current access token) live
    :param refresh_token: the refresh token the connection was configured with
    :param on_secret: called with every token received, to register it with a log masker
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_store: FileTokenStore,
        *,
        policy: retry.RetryPolicy | None = None,
        session: requests.Session | None = None,
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = http.check_base_url(base_url or DEFAULT_BASE_URL, name="ACC host")
        self._client_id = client_id
        self._client_secret = client_secret
        self._seed_token = refresh_token
        self._store = token_store
        self.policy = policy or retry.RetryPolicy()
        self.session = session or http.new_session()
        self._on_secret = on_secret or (lambda _s: None)
        self._access: TokenState | None = None
        self._token_lock = threading.Lock()
        self.refreshes = 0

    # -- sign-in ----------------------------------------------------------------------------

    def access_token(self) -> str:
        with self._token_lock:
            if self._access is None or not self._access.access_valid():
                self._access = self._refresh(stale=self._access.access_token if self._access else None)
            return self._access.access_token  # type: ignore[return-value]

    def _refresh(self, stale: str | None) -> TokenState:
        """Get a usable access token, refreshing only if no other process has just done so.

        :param stale: an access token the API refused; a stored one equal to it is not reused
        """
        with self._store.lock():
            state = self._store.load()
            seed = fingerprint(self._seed_token) if self._seed_token else ""
            if state is None or (seed and state.seed != seed):
                if not self._seed_token:
                    raise AuthError("no ACC refresh token: set extra.refresh_token on the ACC connection")
                state = TokenState(refresh_token=self._seed_token, seed=seed)
            if state.access_valid() and state.access_token != stale:
                self._on_secret(state.access_token)  # type: ignore[arg-type]
                return state
            self._on_secret(state.refresh_token)
            payload = self._token_call(state.refresh_token)
            new = TokenState(
                refresh_token=payload["refresh_token"],
                seed=state.seed,
                access_token=payload["access_token"],
                access_expires_at=time.time() + float(payload.get("expires_in", 3600)),
                updated_at=time.time(),
            )
            self._on_secret(new.refresh_token)
            self._on_secret(new.access_token)  # type: ignore[arg-type]
            # Stored before first use: a crash from here on leaves a refresh token that works.
            self._store.save(new)
            self.refreshes += 1
            log.info("ACC access token refreshed; new refresh token stored in %s", self._store.path)
            return new

    def _token_call(self, refresh_token: str) -> dict[str, Any]:
        url = self.base_url + TOKEN_PATH
        attempts: list[Exception] = []

        def once() -> dict[str, Any]:
            try:
                response = http.request(
                    self.session,
                    "POST",
                    url,
                    auth=(self._client_id, self._client_secret),
                    data={"grant_type": "refresh_token", "refresh_token": refresh_token, "scope": SCOPE},
                )
            except BadRequest as exc:
                if "invalid_grant" in (exc.body or ""):
                    lost = any(isinstance(e, TransportError) for e in attempts)
                    raise RefreshTokenRejected(
                        "ACC refused the stored refresh token (invalid_grant)"
                        + (" after a refresh whose response was lost" if lost else "")
                        + ": sign in again and set a fresh extra.refresh_token on the ACC connection",
                        status=exc.status,
                        url=exc.url,
                        method="POST",
                    ) from None
                raise
            except TransportError as exc:
                attempts.append(exc)
                raise
            payload = http.json_body(response)
            if not isinstance(payload.get("access_token"), str) or not isinstance(payload.get("refresh_token"), str):
                raise ApiError(
                    "token response lacks access_token or refresh_token", url=url, status=response.status_code
                )
            return payload

        return retry.call(self.policy, once, describe="ACC token refresh")

    def _api(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """An authenticated call with retries; a 401 leads to one refresh and one replay."""
        if not http.same_origin(url, self.base_url):
            raise ApiError("refusing to send the ACC token to another host", url=url, method=method)

        def once() -> requests.Response:
            token = self.access_token()
            try:
                return http.request(self.session, method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
            except AuthError as exc:
                if exc.status != 401:
                    raise
                with self._token_lock:
                    self._access = self._refresh(stale=token)
                return http.request(
                    self.session,
                    method,
                    url,
                    headers={"Authorization": f"Bearer {self._access.access_token}"},
                    **kwargs,
                )

        return retry.call(self.policy, once, describe=f"ACC {method} {http_path(url)}")

    # -- photos ----------------------------------------------------------------------------

    def iter_photos(
        self, project_id: str, created_from: datetime, created_to: datetime
    ) -> Iterator[AccPhoto | InvalidPhoto]:
        """Photos created in [created_from, created_to), oldest first, page by page.

        The server-side range is widened by a second on each side (whether its ends are
        inclusive is not documented); the exact window is applied here.
        """
        url = self.base_url + PHOTOS_FILTER_PATH.format(project_id=project_id)
        body: dict[str, Any] = {
            "filter": {
                "createdAt": f"{_range_time(created_from - timedelta(seconds=1))}.."
                f"{_range_time(created_to + timedelta(seconds=1))}"
            },
            "sort": ["createdAt", "asc"],
            "limit": PAGE_LIMIT,
        }
        for raw in self._pages(url, body):
            try:
                photo = AccPhoto.from_api(raw, project_id)
            except InvalidPhoto as exc:
                yield exc
                continue
            if created_from <= photo.created_at < created_to:
                yield photo

    def photos_by_id(self, project_id: str, photo_ids: Iterable[str]) -> dict[str, AccPhoto]:
        """Current records with fresh signed URLs, one call per 50 ids. Absent ids are gone."""
        url = self.base_url + PHOTOS_FILTER_PATH.format(project_id=project_id)
        ids = list(photo_ids)
        found: dict[str, AccPhoto] = {}
        for start in range(0, len(ids), PAGE_LIMIT):
            chunk = ids[start : start + PAGE_LIMIT]
            body = {"filter": {"id": chunk}, "include": ["signedUrls"], "limit": PAGE_LIMIT}
            for raw in self._pages(url, body):
                try:
                    photo = AccPhoto.from_api(raw, project_id)
                except InvalidPhoto:
                    continue
                if photo.id in chunk:
                    found[photo.id] = photo
        return found

    def get_photo(self, project_id: str, photo_id: str) -> AccPhoto:
        """:raises Gone: deleted by a user  :raises NotFound: no such photo"""
        url = self.base_url + PHOTO_PATH.format(project_id=project_id, photo_id=photo_id)
        response = self._api("GET", url, params={"include": "signedUrls"})
        try:
            return AccPhoto.from_api(http.json_body(response), project_id)
        except InvalidPhoto as exc:
            raise ApiError(f"unreadable photo record: {exc.reason}", url=url) from None

    def check_project(self, project_id: str) -> None:
        """One cheap call that proves sign-in and access to the project.

        :raises NotFound: the project is unknown or not visible to this user
        """
        url = self.base_url + PHOTOS_FILTER_PATH.format(project_id=project_id)
        self._api("POST", url, json={"limit": 1})

    def _pages(self, url: str, body: dict[str, Any]) -> Iterator[Any]:
        seen: set[str] = set()
        while True:
            payload = http.json_body(self._api("POST", url, json=body))
            results = payload.get("results")
            if not isinstance(results, list):
                raise ApiError("photos:filter answer has no results list", url=url)
            yield from results
            next_post = (payload.get("pagination") or {}).get("nextPost")
            if not next_post:
                return
            cursor = (next_post.get("body") or {}).get("cursorState")
            if not cursor or cursor in seen:
                raise ApiError("photos:filter repeated a page cursor; stopping rather than looping", url=url)
            seen.add(cursor)
            url = next_post.get("url") or url
            if not http.same_origin(url, self.base_url):
                raise ApiError("photos:filter nextPost points at another host", url=url)
            body = next_post["body"]

    # -- bytes -----------------------------------------------------------------------------

    def download(self, signed_url: str, sink: IO[bytes]) -> int:
        """Stream a signed file URL into ``sink``; one attempt, the caller retries.

        The bearer token is never sent: the URL carries its own signature.

        :raises SignedUrlExpired: 403 from storage
        :raises Gone: the file no longer exists (404/410)
        :raises TransportError: the body stopped early
        :returns: bytes written
        """
        try:
            response = http.request(self.session, "GET", signed_url, stream=True)
        except AuthError as exc:
            raise SignedUrlExpired("signed URL refused (expired)", status=exc.status, url=signed_url) from None
        except (NotFound, Gone) as exc:
            raise Gone("file is gone", status=exc.status, url=signed_url) from None
        written = 0
        expected = response.headers.get("Content-Length")
        try:
            for chunk in response.iter_content(_DOWNLOAD_CHUNK):
                sink.write(chunk)
                written += len(chunk)
        except (requests.exceptions.RequestException, OSError) as exc:
            of = f" of {expected}" if expected is not None and expected.isdigit() else ""
            raise TransportError(
                f"download interrupted after {written}{of} bytes: {type(exc).__name__}", url=signed_url
            ) from None
        finally:
            response.close()
        if expected is not None and expected.isdigit() and int(expected) != written:
            raise TransportError(f"download stopped at {written} of {expected} bytes", url=signed_url)
        return written


def http_path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path
