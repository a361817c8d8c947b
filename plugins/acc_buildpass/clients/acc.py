"""Client of Autodesk Construction Cloud's Photos API, signed in with a three-legged token."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Any, Unpack

import requests

from acc_buildpass.clients import endpoints, http, retry
from acc_buildpass.clients.tokens import FileTokenStore, TokenState, fingerprint
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
from acc_buildpass.models import AccPhoto, parse_time, valid_id

log = logging.getLogger(__name__)

PAGE_LIMIT = 50  # the API caps pages at 50
SCOPE = "data:read"
_DOWNLOAD_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class AccHub:
    """A Data Management hub (an ACC account): ``id`` keeps its ``b.`` prefix."""

    id: str
    name: str


@dataclass(frozen=True)
class AccProject:
    """A project listed by Data Management; ``id`` is the ACC project id (``b.`` stripped)."""

    id: str
    name: str
    hub_id: str


def strip_b(dm_id: str) -> str:
    """Data Management ids of ACC/BIM 360 hubs and projects carry ``b.``; the other APIs do not."""
    return dm_id[2:] if dm_id.startswith("b.") else dm_id


def _range_time(moment: datetime) -> str:
    # Autodesk's examples carry no zone designator; their timestamps are UTC.
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


class AccClient(http.ApiClient):
    """ACC Photos API (and Data Management's hubs and projects), signed in as one user.

    :param token_store: where rotated refresh tokens (and the current access token) live
    :param refresh_token: the refresh token the connection was configured with
    :param on_secret: called with every token received, to register it with a log masker
    :raises ValueError: a base URL the refresh token must not go to (``http.check_base_url``)
    """

    default_base_url = endpoints.ACC_BASE_URL
    host_name = "ACC host"

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        token_store: FileTokenStore,
        **options: Unpack[http.ClientOptions],
    ) -> None:
        super().__init__(base_url, client_id, client_secret, **options)
        self._seed_token = refresh_token
        self._store = token_store
        self._access: TokenState | None = None
        self._token_lock = threading.Lock()
        self.refreshes = 0

    # -- sign-in ----------------------------------------------------------------------------

    def access_token(self) -> str:
        """A valid access token: the one in hand, one another process stored, or a refreshed one.

        :raises AuthError: no refresh token configured
        :raises RefreshTokenRejected: ACC refused the refresh token (sign in again)
        :raises ConfigError: the token store cannot be read with the configured key
        :raises ApiError: the token call failed for good (after the policy's retries)
        """
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

    def check_client(self) -> None:
        """Prove the client id and secret with a two-legged token; the refresh token is not touched.

        :raises AuthError: ACC refused the client id or secret
        :raises ApiError: any other refusal, or no usable answer after the policy's retries
        """
        response = retry.call(
            self.policy,
            lambda: http.request(
                self.session,
                "POST",
                self.base_url + endpoints.ACC_TOKEN,
                auth=(self._client_id, self._client_secret),
                data={"grant_type": "client_credentials", "scope": SCOPE},
            ),
            describe="ACC client check",
        )
        token = http.json_body(response).get("access_token")
        if isinstance(token, str):
            self._on_secret(token)

    def _token_call(self, refresh_token: str) -> dict[str, Any]:
        url = self.base_url + endpoints.ACC_TOKEN
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
        self,
        project_id: str,
        created_from: datetime,
        created_to: datetime,
        on_page: Callable[[int], None] | None = None,
    ) -> Iterator[AccPhoto | InvalidPhoto]:
        """Photos created in [created_from, created_to), oldest first, page by page.

        The server-side range is widened by a second on each side (whether its ends are
        inclusive is not documented); the exact window is applied here.

        :param on_page: called with the number of records of each page as it arrives (progress)
        :raises NotFound: the project is unknown or not visible to this user
        :raises ApiError: a page could not be read, or the pages loop or leave the host
        """
        first = created_from - timedelta(seconds=1)
        last = created_to + timedelta(seconds=1)
        for raw in self._listing(self._photos_filter(project_id), first, last, on_page):
            try:
                photo = AccPhoto.from_api(raw, project_id)
            except InvalidPhoto as exc:
                yield exc
                continue
            if created_from <= photo.created_at < created_to:
                yield photo

    def _listing(
        self, url: str, first: datetime, last: datetime, on_page: Callable[[int], None] | None
    ) -> Iterator[Any]:
        """Records created in [first, last], by createdAt; a cursor refused mid-listing is not the end.

        When a ``nextPost`` cursor is refused (400), the listing starts again a second before
        the last ``createdAt`` seen (whether a range includes its start is not documented, and
        ties on a whole second are common): what was already yielded is left out.

        :raises BadRequest: the first page was refused
        :raises ApiError: a page could not be read, or a resumed listing made no progress
        """
        start, tail, resumed = first, _Tail(), False
        while True:
            pages = 0

            def counted(count: int) -> None:
                nonlocal pages
                pages += 1
                if on_page is not None:
                    on_page(count)

            body = {
                "filter": {"createdAt": f"{_range_time(start)}..{_range_time(last)}"},
                "sort": ["createdAt", "asc"],
                "limit": PAGE_LIMIT,
            }
            progress = tail.new
            try:
                for raw in self._pages(url, body, counted):
                    if tail.first_time(raw):
                        yield raw
                return
            except BadRequest as exc:
                if pages == 0:
                    raise
                if tail.second is None or (resumed and tail.new == progress):
                    raise ApiError(
                        "photos:filter refused its cursor and listing again from the last createdAt made no progress",
                        status=exc.status,
                        url=exc.url,
                        body=exc.body,
                        method="POST",
                    ) from None
                log.warning("photos:filter refused its cursor; listing again from createdAt %s", tail.second)
                tail.floor = tail.second
                start, resumed = tail.second - timedelta(seconds=1), True

    def photos_by_id(self, project_id: str, photo_ids: Iterable[str]) -> dict[str, AccPhoto]:
        """Current records with fresh signed URLs, one call per 50 ids. Absent ids are gone.

        :raises ApiError: a page could not be read
        """
        url = self._photos_filter(project_id)
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
        """One photo's current record, with fresh signed URLs.

        :raises Gone: deleted by a user
        :raises NotFound: no such photo
        :raises ApiError: any other refusal, or an unreadable record
        """
        url = self.base_url + endpoints.path(endpoints.ACC_PHOTO, project_id=project_id, photo_id=photo_id)
        response = self._api("GET", url, params={"include": "signedUrls"})
        try:
            return AccPhoto.from_api(http.json_body(response), project_id)
        except InvalidPhoto as exc:
            raise ApiError(f"unreadable photo record: {exc.reason}", url=url) from None

    def check_project(self, project_id: str) -> None:
        """One cheap call that proves sign-in and access to the project.

        :raises NotFound: the project is unknown or not visible to this user
        :raises ApiError: any other refusal
        """
        self._api("POST", self._photos_filter(project_id), json={"limit": 1})

    def _photos_filter(self, project_id: str) -> str:
        return self.base_url + endpoints.path(endpoints.ACC_PHOTOS_FILTER, project_id=project_id)

    def _pages(self, url: str, body: dict[str, Any], on_page: Callable[[int], None] | None = None) -> Iterator[Any]:
        seen: set[str] = set()
        while True:
            payload = http.json_body(self._api("POST", url, json=body))
            results = payload.get("results")
            if not isinstance(results, list):
                raise ApiError("photos:filter answer has no results list", url=url)
            if on_page is not None:
                on_page(len(results))
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

    # -- discovery (Data Management) -------------------------------------------------------

    def list_hubs(self) -> list[AccHub]:
        """The hubs (ACC accounts) the signed-in user can see.

        :raises ApiError: a page could not be read, or the pages loop or leave the host
        """
        hubs = []
        for item in self._dm_items(self.base_url + endpoints.ACC_HUBS, "hubs"):
            hubs.append(AccHub(id=item["id"], name=_dm_name(item)))
        return hubs

    def list_projects(self, hub_id: str, page_limit: int = 200) -> list[AccProject]:
        """Every project of one hub the signed-in user can see, all pages (``page[limit]`` each).

        :raises ValueError: ``hub_id`` is not an id
        :raises ApiError: a page could not be read, or the pages loop or leave the host
        """
        if not valid_id(hub_id):
            raise ValueError(f"not a hub id: {hub_id!r}")
        path = endpoints.path(endpoints.ACC_HUB_PROJECTS, hub_id=hub_id)
        url = self.base_url + path + f"?page%5Blimit%5D={int(page_limit)}"
        return [
            AccProject(id=strip_b(item["id"]), name=_dm_name(item), hub_id=hub_id)
            for item in self._dm_items(url, "projects")
        ]

    def _dm_items(self, url: str, kind: str) -> Iterator[dict[str, Any]]:
        """JSON:API ``data`` items of ``kind``, following ``links.next`` on the same host."""
        seen: set[str] = set()
        next_url: str | None = url
        while next_url:
            if next_url in seen:
                raise ApiError(f"Data Management repeated a {kind} page; stopping rather than looping", url=next_url)
            seen.add(next_url)
            payload = http.json_body(self._api("GET", next_url))
            data = payload.get("data")
            if not isinstance(data, list):
                raise ApiError(f"Data Management {kind} answer has no data list", url=next_url)
            for item in data:
                if isinstance(item, dict) and item.get("type") == kind and isinstance(item.get("id"), str):
                    yield item
            links = payload.get("links") or {}
            nxt = links.get("next") if isinstance(links, dict) else None
            href = nxt.get("href") if isinstance(nxt, dict) else nxt
            next_url = href if isinstance(href, str) and href else None
            if next_url and not http.same_origin(next_url, self.base_url):
                raise ApiError(f"Data Management {kind} links.next points at another host", url=next_url)

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


class _Tail:
    """The records of the latest createdAt second listed, to leave out when a listing resumes there."""

    def __init__(self) -> None:
        self.second: datetime | None = None  # the latest createdAt second yielded
        self.floor: datetime | None = None  # where the listing resumed: anything earlier was yielded
        self._seen: set[str] = set()
        self.new = 0  # records yielded, in all

    def first_time(self, raw: Any) -> bool:
        """Whether ``raw`` was not yet yielded (a record whose createdAt is unreadable always is new)."""
        try:
            second = parse_time(raw.get("createdAt")).replace(microsecond=0)
        except (AttributeError, ValueError):
            self.new += 1
            return True
        if self.floor is not None and second < self.floor:
            return False
        key = raw.get("id") if isinstance(raw.get("id"), str) else json.dumps(raw, sort_keys=True, default=str)
        if second != self.second:
            if self.second is not None and second < self.second:
                self.new += 1  # out of order: not ours to judge here
                return True
            self.second, self._seen = second, set()
        if key in self._seen:
            return False
        self._seen.add(key)
        self.new += 1
        return True


def _dm_name(item: dict[str, Any]) -> str:
    attributes = item.get("attributes")
    name = attributes.get("name") if isinstance(attributes, dict) else None
    return name if isinstance(name, str) else ""


def http_path(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path
