"""Autodesk Construction Cloud emulator: APS sign-in, the Photos API and S3-style signed files."""

from __future__ import annotations

import base64
import bisect
import calendar
import hashlib
import hmac
import json
import math
import random
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox import images
from sandbox.http import (
    App,
    HttpError,
    Request,
    Response,
    admin_json,
    chunks_of,
    json_response,
)

DEFAULT_CLIENT = ("acc-demo-client", "acc-demo-secret")
ACCESS_TTL = 3600
REFRESH_TTL = 15 * 24 * 3600
SIGNED_URL_TTL = 60
DEFAULT_LIMIT = 25
MAX_LIMIT = 50
MISSING = -1e18  # sort key of a record whose timestamp is missing or unreadable
MAX_ID = "\U0010ffff"
BEHAVIOURS = ("ok", "gone", "error500", "short", "empty", "notimage")
PHOTOS = r"/construction/photos/v1/projects/(?P<project_id>[^/]+)"
HUBS = r"/project/v1/hubs"
HUB_NAME = "Sandbox Construction Co."
DM_PAGE_LIMIT = 200  # Data Management pages: default and maximum page[limit]
NOVEL_MEDIA_TYPES = ("PANORAMA", "DRONE_ORTHO")  # types ACC does not list today (answer media_type=novel)
STORAGE_CLOCK_AHEAD = 2  # seconds the file storage's clock runs ahead (answer signed_url_clock=ahead)

TITLES = [
    "Level 3 slab pour",
    "Level 2 slab pour",
    "North facade scaffolding",
    "Basement waterproofing",
    "Stair core formwork",
    "Crane base inspection",
    "Rebar before pour - grid C4",
    "Curtain wall install, east elevation",
    "Office Dry Wall",
    "Roof membrane defect",
    "Fire stopping at riser 2",
    "Site induction board",
    "Excavation shoring",
    "Precast panel delivery",
    "Plant room pipework",
    "Defect: cracked tile, unit 204",
    "Lift shaft progress",
    "Temporary works sign-off",
    "Façade mock-up (approved)",
    "Electrical rough-in / L4",
    "Concrete test cylinders",
    "Safety: edge protection missing",
]
DESCRIPTIONS = [
    "The left side of the office",
    "Taken before the pour; formwork checked by site engineer.",
    "See RFI 112 for the detail.",
    "Defect raised with the subcontractor, to be fixed by Friday.",
    "Progress photo for the weekly report.",
    "Handover walk-through, punch list item.",
]
TYPES = ["GALLERY"] * 5 + ["FIELD-REPORT", "FIELD-REPORT", "ISSUE", "FORM", "RFI", "MARKUP", "MEETING"]
USERS = ["PER8KQPK2JRT", "NCSNR6R5NHUD", "5QCVQ6JAUTHB", "X7YWPQ2LKJ3M"]


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp (Z, offset, or none = UTC); None when unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def acc_time(epoch: float) -> str:
    """Autodesk's format: UTC, whole seconds, no zone designator."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def amz_date(epoch: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(epoch))


def s3_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{secrets.token_hex(8).upper()}</RequestId><HostId>sandbox</HostId></Error>"
    ).encode()
    return Response(status, body, "application/xml")


@dataclass
class Photo:
    key: str  # storage key: the record's id, or a made-up one when the record has none
    project_id: str
    record: dict[str, Any]
    object_id: str
    body_size: int
    body: bytes | None = None  # explicit bytes; else generated from (key, body_size)
    video: bool = False
    behaviour: str = "ok"
    created_key: float = MISSING
    taken_key: float = MISSING
    sha256: str | None = None

    def chunks(self, limit: int | None = None) -> Iterable[bytes]:
        if self.body is not None:
            data = self.body if limit is None else self.body[:limit]
            return chunks_of(data)
        if self.video:
            return images.iter_mp4(self.key, self.body_size, limit=limit)
        return images.iter_jpeg(self.key, self.body_size, limit=limit)

    @property
    def content_type(self) -> str:
        return "video/mp4" if self.video else "image/jpeg"


@dataclass
class Project:
    id: str
    name: str | None = None  # shown by Data Management; a made-up one when never set
    photos: dict[str, Photo] = field(default_factory=dict)
    by_created: list[tuple[float, str]] = field(default_factory=list)
    by_taken: list[tuple[float, str]] = field(default_factory=list)

    def index(self, photo: Photo) -> None:
        photo.created_key = _key(photo.record.get("createdAt"))
        photo.taken_key = _key(photo.record.get("takenAt"))
        bisect.insort(self.by_created, (photo.created_key, photo.key))
        bisect.insort(self.by_taken, (photo.taken_key, photo.key))

    def unindex(self, photo: Photo) -> None:
        for lst, entry in (
            (self.by_created, (photo.created_key, photo.key)),
            (self.by_taken, (photo.taken_key, photo.key)),
        ):
            i = bisect.bisect_left(lst, entry)
            if i < len(lst) and lst[i] == entry:
                del lst[i]


def _key(value: Any) -> float:
    parsed = parse_time(value)
    return MISSING if parsed is None else parsed


@dataclass
class Query:
    ranges: dict[str, tuple[float, float]]
    ids: list[str] | None
    media_types: set[str] | None
    title: str | None
    created_by: set[str] | None
    include_signed: bool
    limit: int
    field: str
    descending: bool


class AccApp(App):
    name = "acc"
    answer_choices = {
        # What a record's "size" says: the true byte count (today), 0, no key, or one per photo.
        "size": ("true", "zero", "absent", "mixed"),
        # "novel": one NORMAL photo in four (by id) is served with a mediaType not listed today.
        "media_type": ("listed", "novel"),
        # "ahead": the storage's clock runs STORAGE_CLOCK_AHEAD s ahead of X-Amz-Date's issuer.
        "signed_url_clock": ("same", "ahead"),
        # "breaks": every second nextPost cursor of a listing is refused with 400.
        "cursor": ("keeps", "breaks"),
    }

    def reset_state(self) -> None:
        self.clients: dict[str, str] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}
        self.chains: dict[str, str] = {}  # chain id -> its newest refresh token
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self.projects: dict[str, Project] = {}
        self.objects: dict[str, Photo] = {}
        self.sign_key = random.Random(f"{self.seed}:acc:sign").randbytes(32)
        self.seed_calls = 0
        self.anon = 0
        hub_uuid = uuid.UUID(int=random.Random(f"{self.seed}:acc:hub").getrandbits(128), version=4)
        self.hub_id = f"b.{hub_uuid}"  # the one hub (ACC account) every project belongs to
        self.add_client(*DEFAULT_CLIENT)

    # -- routes --------------------------------------------------------------------------

    def setup_routes(self) -> None:
        self.route("POST", r"/authentication/v2/token", "token", self.token)
        self.route("POST", PHOTOS + r"/photos:filter", "photos:filter", self.photos_filter, read=True)
        self.route("GET", PHOTOS + r"/photos/(?P<photo_id>[^/]+)", "photo", self.get_photo, read=True)
        self.route("GET", r"/oss/(?P<object_id>[^/]+)", "oss", self.oss, read=True)
        self.route(
            "GET", r"/construction/photos/assets/(?P<object_id>[^/]+)/(?P<name>[^/]+)", "asset", self.asset, read=True
        )
        self.route("GET", HUBS, "hubs", self.list_hubs, read=True)
        self.route("GET", HUBS + r"/(?P<hub_id>[^/]+)/projects", "hub-projects", self.hub_projects, read=True)
        self.admin("POST", r"/clients", self._admin_client)
        self.admin("POST", r"/projects", self._admin_project)
        self.admin("POST", r"/refresh-token", self._admin_refresh_token)
        self.admin("POST", r"/photos", self._admin_add_photos)
        self.admin("POST", r"/seed", self._admin_seed)
        self.admin("GET", r"/photos", self._admin_photos)
        self.admin("PATCH", r"/photos/(?P<photo_id>[^/]+)", self._admin_patch_photo)
        self.admin("POST", r"/photos/(?P<photo_id>[^/]+)/behaviour", self._admin_behaviour)
        self.admin("POST", r"/photos/(?P<photo_id>[^/]+)/delete", self._admin_delete_photo)

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        return json_response(
            status, {"developerMessage": message, "errorCode": code or f"ERR-{status}", "more info": ""}
        )

    def rate_limited(self, headers: list[tuple[str, str]], wait: float) -> Response:
        response = json_response(429, {"developerMessage": "Quota limit exceeded.", "errorCode": "ERR-429"})
        response.headers.append(("Retry-After", str(max(math.ceil(wait), 0))))
        return response

    def server_error(self, status: int) -> Response:
        message = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}.get(status, "Error")
        return self.error(status, message)

    # -- sign-in -------------------------------------------------------------------------

    def add_client(self, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.clients[client_id] = client_secret
        self.remember_secret(client_secret)

    def issue_refresh_token(self, client_id: str, chain: str | None = None) -> str:
        token = secrets.token_urlsafe(30)
        with self.lock:
            chain = chain or secrets.token_hex(8)
            self.refresh_tokens[token] = {
                "client_id": client_id,
                "chain": chain,
                "used": False,
                "expires": self.now() + REFRESH_TTL,
            }
            self.chains[chain] = token
        self.remember_secret(token)
        return token

    def _issue_access(self, client_id: str, three_legged: bool) -> tuple[str, int]:
        ttl = self.fault_setting("access_token_ttl") or ACCESS_TTL
        token = "eyJ" + secrets.token_urlsafe(40)
        with self.lock:
            self.access_tokens[token] = {"client_id": client_id, "expires": self.now() + ttl, "user": three_legged}
        self.remember_secret(token)
        return token, int(ttl)

    def token(self, req: Request) -> Response:
        if "json" in (req.header("Content-Type") or ""):
            req.body.drain()
            return self._oauth_error(400, "invalid_request", "the body must be application/x-www-form-urlencoded")
        form = req.form()
        creds = req.basic_auth()
        client_id, client_secret = creds if creds else (form.get("client_id"), form.get("client_secret"))
        if not client_id or not client_secret:
            return self._oauth_error(401, "invalid_client", "client authentication failed")
        with self.lock:
            known = self.clients.get(client_id)
        if known is None or not hmac.compare_digest(known.encode(), client_secret.encode()):
            return self._oauth_error(401, "invalid_client", "client authentication failed")
        grant = form.get("grant_type")
        if not grant:
            return self._oauth_error(400, "invalid_request", "grant_type is required")
        if grant == "client_credentials":
            access, ttl = self._issue_access(client_id, three_legged=False)
            return json_response(200, {"access_token": access, "token_type": "Bearer", "expires_in": ttl})
        if grant == "authorization_code":
            return self._oauth_error(400, "invalid_grant", "the authorization code is invalid or expired")
        if grant != "refresh_token":
            return self._oauth_error(400, "unsupported_grant_type", f"unsupported grant_type {grant!r}")
        old = form.get("refresh_token")
        if not old:
            return self._oauth_error(400, "invalid_request", "refresh_token is required")
        with self.lock:
            state = self.refresh_tokens.get(old)
            if (
                state is None
                or state["client_id"] != client_id
                or state["used"]
                or self.chains.get(state["chain"]) != old
                or state["expires"] < self.now()
            ):
                return self._oauth_error(400, "invalid_grant", "The refresh token is invalid or expired.")
            state["used"] = True
            new = self.issue_refresh_token(client_id, chain=state["chain"])
        access, ttl = self._issue_access(client_id, three_legged=True)
        return json_response(
            200, {"access_token": access, "token_type": "Bearer", "expires_in": ttl, "refresh_token": new}
        )

    @staticmethod
    def _oauth_error(status: int, error: str, description: str) -> Response:
        return json_response(status, {"error": error, "error_description": description})

    def _authorize(self, req: Request, *, user: bool = True) -> None:
        """A valid three-legged token (any valid token when ``user`` is False), else 401/403."""
        token = req.bearer()
        with self.lock:
            state = self.access_tokens.get(token) if token else None
        if state is None or state["expires"] <= self.now():
            raise HttpError(self.error(401, "The token is not valid", "AUTH-006"))
        if user and not state["user"]:
            raise HttpError(
                self.error(403, "This API requires a three-legged token: user context is required", "AUTH-012")
            )

    def _project(self, project_id: str) -> Project:
        with self.lock:
            project = self.projects.get(project_id)
        if project is None:
            raise HttpError(self.error(404, f"project {project_id} not found", "ERR-NOT-FOUND"))
        return project

    # -- photos --------------------------------------------------------------------------

    def served_media_type(self, photo: Photo) -> Any:
        media = photo.record.get("mediaType")
        if media == "NORMAL" and self.answer("media_type") == "novel":
            digest = hashlib.sha256(photo.key.encode()).digest()
            if digest[0] % 4 == 0:
                return NOVEL_MEDIA_TYPES[digest[1] % len(NOVEL_MEDIA_TYPES)]
        return media

    def _served_size(self, photo: Photo, out: dict[str, Any]) -> None:
        """Make the record's ``size`` lie as the ``size`` answer says (the bytes do not change).

        Only an honest size lies: a record crafted with a wrong one keeps its own lie.
        """
        honest = out.get("size") == (len(photo.body) if photo.body is not None else photo.body_size)
        answer = self.answer("size") if honest else "true"
        if answer == "mixed":
            answer = ("true", "zero", "absent")[hashlib.sha256(photo.key.encode()).digest()[2] % 3]
        if answer == "zero":
            out["size"] = 0
        elif answer == "absent":
            out.pop("size", None)

    def photo_json(self, photo: Photo, base: str, *, signed: bool) -> dict[str, Any]:
        out = dict(photo.record)
        if "mediaType" in out:
            out["mediaType"] = self.served_media_type(photo)
        self._served_size(photo, out)
        pid = photo.key
        if "urls" not in out:
            asset = f"{base}/construction/photos/assets/{photo.object_id}/{pid}"
            ext = ".mp4" if photo.video else ".jpg"
            out["urls"] = {"fileUrl": asset + ext, "thumbnailUrl": asset + "_t.jpg"}
        if signed and "signedUrls" not in out:
            out["signedUrls"] = {
                "fileUrl": self.sign_url(base, photo.object_id),
                "thumbnailUrl": self.sign_url(base, photo.object_id + "_t"),
            }
        elif not signed:
            out.pop("signedUrls", None)
        return out

    def sign_url(self, base: str, object_id: str) -> str:
        ttl = int(self.fault_setting("signed_url_ttl") or SIGNED_URL_TTL)
        date = amz_date(self.now())
        signature = self._signature(object_id, date, str(ttl))
        return f"{base}/oss/{object_id}?X-Amz-Date={date}&X-Amz-Expires={ttl}&X-Amz-Signature={signature}"

    def _signature(self, object_id: str, date: str, expires: str) -> str:
        message = f"{object_id}\n{date}\n{expires}".encode()
        return hmac.new(self.sign_key, message, hashlib.sha256).hexdigest()

    def get_photo(self, req: Request, project_id: str, photo_id: str) -> Response:
        self._authorize(req)
        project = self._project(project_id)
        with self.lock:
            photo = project.photos.get(photo_id)
        if photo is None:
            return self.error(404, f"photo {photo_id} not found", "ERR-NOT-FOUND")
        if photo.record.get("deletedAt"):
            return self.error(410, "The resource was deleted by a user and cannot be returned", "ERR-GONE")
        include = ",".join(req.query.get("include", []) + req.query.get("include[]", []))
        signed = "signedUrls" in include.split(",")
        return json_response(200, self.photo_json(photo, req.base_url, signed=signed))

    def photos_filter(self, req: Request, project_id: str) -> Response:
        self._authorize(req)
        project = self._project(project_id)
        body = req.json()
        if body is None:
            body = {}
        if not isinstance(body, dict):
            return self.error(400, "the body must be a JSON object", "ERR-BAD-INPUT")
        offset, pages = 0, 1  # pages: this one's number in the listing
        after: tuple[float, str] | None = None
        if body.get("cursorState") is not None:
            spec, after, offset, pages = self._open_cursor(body["cursorState"], project_id)
        else:
            spec = {k: body.get(k) for k in ("filter", "include", "limit", "sort")}
        try:
            query = self._query(spec)
        except ValueError as exc:
            return self.error(400, str(exc), "ERR-BAD-INPUT")
        with self.lock:
            page, more = self._run(project, query, after)
            results = [self.photo_json(p, req.base_url, signed=query.include_signed) for p in page]
        pagination: dict[str, Any] = {"limit": query.limit, "offset": offset}
        if more and page:
            last = page[-1]
            sort_key = last.created_key if query.field == "createdAt" else last.taken_key
            cursor = self._make_cursor(spec, project_id, (sort_key, last.key), offset + len(page), pages)
            pagination["nextPost"] = {
                "url": f"{req.base_url}/construction/photos/v1/projects/{project_id}/photos:filter",
                "body": {"cursorState": cursor},
            }
        return json_response(200, {"pagination": pagination, "results": results})

    def _make_cursor(
        self, spec: dict[str, Any], project_id: str, after: tuple[float, str], offset: int, pages: int
    ) -> str:
        state = {"q": spec, "p": project_id, "a": list(after), "o": offset, "t": self.now(), "n": pages + 1}
        raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self.sign_key, raw, hashlib.sha256).digest()[:12]
        return base64.urlsafe_b64encode(mac + raw).decode().rstrip("=")

    def _open_cursor(self, cursor: Any, project_id: str) -> tuple[dict[str, Any], tuple[float, str], int, int]:
        bad = HttpError(self.error(400, "cursorState is invalid or has expired", "ERR-BAD-INPUT"))
        if not isinstance(cursor, str) or not cursor:
            raise bad
        try:
            blob = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            mac, raw = blob[:12], blob[12:]
            if not hmac.compare_digest(mac, hmac.new(self.sign_key, raw, hashlib.sha256).digest()[:12]):
                raise bad
            state = json.loads(raw)
            after = (float(state["a"][0]), str(state["a"][1]))
            spec, offset, issued, pages = state["q"], int(state["o"]), float(state["t"]), int(state.get("n", 2))
        except HttpError:
            raise
        except (ValueError, KeyError, TypeError, IndexError):
            raise bad from None
        if state.get("p") != project_id:
            raise bad
        ttl = self.fault_setting("cursor_ttl")
        if ttl and self.now() - issued > ttl:
            raise bad
        if pages % 2 == 1 and self.answer("cursor") == "breaks":
            self.count_event("cursor_refused")
            raise bad  # the cursor of every second nextPost (pages 3, 5, ...)
        return spec, after, offset, pages

    def _query(self, spec: dict[str, Any]) -> Query:
        flt = spec.get("filter")
        if flt is None:
            flt = {}
        if not isinstance(flt, dict):
            raise ValueError("filter must be an object")
        ranges: dict[str, tuple[float, float]] = {}
        for name in ("createdAt", "takenAt"):
            if flt.get(name) is not None:
                ranges[name] = self._range(name, flt[name])
        ids = flt.get("id")
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
            raise ValueError("filter.id must be a list of photo ids")
        media = flt.get("mediaType")
        if media is not None and (not isinstance(media, list) or not all(isinstance(m, str) for m in media)):
            raise ValueError("filter.mediaType must be a list")
        title = flt.get("title")
        if title is not None and not isinstance(title, str):
            raise ValueError("filter.title must be a string")
        created_by = flt.get("createdBy")
        if created_by is not None and (
            not isinstance(created_by, list) or not all(isinstance(c, str) for c in created_by)
        ):
            raise ValueError("filter.createdBy must be a list")
        include = spec.get("include")
        if include is not None and (not isinstance(include, list) or not all(isinstance(i, str) for i in include)):
            raise ValueError("include must be a list of strings")
        limit = spec.get("limit")
        if limit is None:
            limit = DEFAULT_LIMIT
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive integer")
        sort = spec.get("sort")
        if sort is None:
            sort = ["createdAt", "asc"]
        if (
            not isinstance(sort, list)
            or not 1 <= len(sort) <= 2
            or sort[0] not in ("createdAt", "takenAt")
            or (len(sort) == 2 and sort[1] not in ("asc", "desc"))
        ):
            raise ValueError('sort must be ["createdAt"|"takenAt", "asc"|"desc"]')
        return Query(
            ranges=ranges,
            ids=ids,
            media_types=set(media) if media is not None else None,
            title=title.lower() if title else None,
            created_by=set(created_by) if created_by is not None else None,
            include_signed="signedUrls" in (include or []),
            limit=min(limit, MAX_LIMIT),
            field=sort[0],
            descending=len(sort) == 2 and sort[1] == "desc",
        )

    @staticmethod
    def _range(name: str, value: Any) -> tuple[float, float]:
        if not isinstance(value, str) or ".." not in value:
            raise ValueError(f'filter.{name} must be a range "start..end"')
        start, _, end = value.partition("..")
        lo = parse_time(start) if start.strip() else -1e17
        hi = parse_time(end) if end.strip() else 1e17
        if lo is None or hi is None:
            raise ValueError(f"filter.{name}: unreadable timestamp in {value!r}")
        return lo, hi  # inclusive at both ends

    def _matches(self, photo: Photo, q: Query) -> bool:
        record = photo.record
        for name, (lo, hi) in q.ranges.items():
            key = photo.created_key if name == "createdAt" else photo.taken_key
            if not lo <= key <= hi:
                return False
        if q.media_types is not None and self.served_media_type(photo) not in q.media_types:
            return False
        if q.title is not None:
            title = record.get("title")
            if not isinstance(title, str) or q.title not in title.lower():
                return False
        return not (q.created_by is not None and record.get("createdBy") not in q.created_by)

    def _run(self, project: Project, q: Query, after: tuple[float, str] | None) -> tuple[list[Photo], bool]:
        """One page after ``after`` in the query's order, and whether another match follows."""
        index = project.by_created if q.field == "createdAt" else project.by_taken
        want = q.limit + 1
        found: list[Photo] = []
        if q.ids is not None:
            photos = [project.photos[i] for i in dict.fromkeys(q.ids) if i in project.photos]
            keyed = sorted(((p.created_key if q.field == "createdAt" else p.taken_key, p.key), p) for p in photos)
            if q.descending:
                keyed.reverse()
            for entry, photo in keyed:
                if after is not None and (entry >= after if q.descending else entry <= after):
                    continue
                if self._matches(photo, q):
                    found.append(photo)
                    if len(found) == want:
                        break
        else:
            lo_i, hi_i = 0, len(index)
            if q.field in q.ranges:
                lo, hi = q.ranges[q.field]
                lo_i = bisect.bisect_left(index, (lo, ""))
                hi_i = bisect.bisect_right(index, (hi, MAX_ID))
            if not q.descending:
                start = lo_i if after is None else max(lo_i, bisect.bisect_right(index, after))
                positions: Iterable[int] = range(start, hi_i)
            else:
                end = hi_i if after is None else min(hi_i, bisect.bisect_left(index, after))
                positions = range(end - 1, lo_i - 1, -1)
            for i in positions:
                photo = project.photos[index[i][1]]
                if self._matches(photo, q):
                    found.append(photo)
                    if len(found) == want:
                        break
        return found[: q.limit], len(found) > q.limit

    # -- Data Management: hubs and projects ----------------------------------------------

    @staticmethod
    def _dm_error(status: int, code: str, detail: str) -> Response:
        """Data Management answers its own errors in the JSON:API shape."""
        error = {"id": str(uuid.uuid4()), "status": str(status), "code": code, "title": detail, "detail": detail}
        return json_response(status, {"jsonapi": {"version": "1.0"}, "errors": [error]})

    def _hub_json(self, base: str) -> dict[str, Any]:
        return {
            "type": "hubs",
            "id": self.hub_id,
            "attributes": {
                "name": HUB_NAME,
                "region": "US",
                "extension": {
                    "type": "hubs:autodesk.bim360:Account",
                    "version": "1.0",
                    "schema": {"href": f"{base}/schema/v1/versions/hubs:autodesk.bim360:Account-1.0"},
                    "data": {},
                },
            },
            "links": {"self": {"href": f"{base}{HUBS}/{self.hub_id}"}},
            "relationships": {
                "projects": {"links": {"related": {"href": f"{base}{HUBS}/{self.hub_id}/projects"}}},
            },
        }

    def list_hubs(self, req: Request) -> Response:
        self._authorize(req, user=False)
        base = req.base_url
        return json_response(
            200,
            {"jsonapi": {"version": "1.0"}, "links": {"self": {"href": base + HUBS}}, "data": [self._hub_json(base)]},
        )

    def hub_projects(self, req: Request, hub_id: str) -> Response:
        self._authorize(req, user=False)
        if hub_id != self.hub_id:
            return self._dm_error(404, "NOT_FOUND", f"hub {hub_id} not found or not accessible")
        try:
            number = _page_arg(req.arg("page[number]"), 0, "page[number]")
            limit = min(_page_arg(req.arg("page[limit]"), DM_PAGE_LIMIT, "page[limit]", minimum=1), DM_PAGE_LIMIT)
        except ValueError as exc:
            return self._dm_error(400, "BAD_INPUT", str(exc))
        with self.lock:
            projects = sorted(self.projects.values(), key=lambda p: p.id)
            page = projects[number * limit : (number + 1) * limit]
            data = [self._project_json(p, req.base_url) for p in page]
        url = f"{req.base_url}{HUBS}/{hub_id}/projects"
        links: dict[str, Any] = {"self": {"href": f"{url}?page%5Bnumber%5D={number}&page%5Blimit%5D={limit}"}}
        if (number + 1) * limit < len(projects):
            links["next"] = {"href": f"{url}?page%5Bnumber%5D={number + 1}&page%5Blimit%5D={limit}"}
        return json_response(200, {"jsonapi": {"version": "1.0"}, "links": links, "data": data})

    def _project_json(self, project: Project, base: str) -> dict[str, Any]:
        pid = f"b.{project.id}"
        return {
            "type": "projects",
            "id": pid,
            "attributes": {
                "name": project.name or f"Sandbox project {project.id[:8]}",
                "scopes": [f"b360project.{project.id}", "global"],
                "extension": {
                    "type": "projects:autodesk.bim360:Project",
                    "version": "1.0",
                    "schema": {"href": f"{base}/schema/v1/versions/projects:autodesk.bim360:Project-1.0"},
                    "data": {"projectType": "ACC"},
                },
            },
            "links": {"self": {"href": f"{base}{HUBS}/{self.hub_id}/projects/{pid}"}},
            "relationships": {"hub": {"data": {"type": "hubs", "id": self.hub_id}}},
        }

    def _admin_project(self, req: Request) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict) or not isinstance(body.get("project_id"), str) or not body["project_id"]:
            return json_response(400, {"error": "project_id is required"})
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            return json_response(400, {"error": "name must be a string"})
        with self.lock:
            project = self.projects.setdefault(body["project_id"], Project(body["project_id"]))
            if name is not None:
                project.name = name
            return json_response(200, {"project_id": project.id, "name": project.name, "hub_id": self.hub_id})

    # -- files ---------------------------------------------------------------------------

    def _lookup_object(self, object_id: str) -> tuple[Photo | None, bool]:
        thumb = object_id.endswith("_t")
        with self.lock:
            photo = self.objects.get(object_id[:-2] if thumb else object_id)
        return photo, thumb

    def oss(self, req: Request, object_id: str) -> Response:
        if req.header("Authorization"):
            return s3_error(
                400,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query "
                "string parameter or the Authorization header should be specified",
            )
        date, expires, signature = req.arg("X-Amz-Date"), req.arg("X-Amz-Expires"), req.arg("X-Amz-Signature")
        if not date or not expires or not signature:
            return s3_error(403, "AccessDenied", "Query-string authentication requires a signature")
        if not hmac.compare_digest(signature, self._signature(object_id, date, expires)):
            return s3_error(
                403, "AccessDenied", "The request signature we calculated does not match the signature you provided"
            )
        try:
            issued = calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ"))
            lifetime = int(expires)
        except ValueError:
            return s3_error(403, "AccessDenied", "Request has expired")
        ahead = STORAGE_CLOCK_AHEAD if self.answer("signed_url_clock") == "ahead" else 0
        if self.now() + ahead > issued + lifetime:
            self.count_event("expired_url_refused")
            return s3_error(403, "AccessDenied", "Request has expired")
        photo, thumb = self._lookup_object(object_id)
        if photo is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return self._file(photo, thumb)

    def asset(self, req: Request, object_id: str, name: str) -> Response:
        self._authorize(req)
        photo, _ = self._lookup_object(object_id)
        if photo is None or not name.startswith(photo.key):
            return self.error(404, "asset not found", "ERR-NOT-FOUND")
        return self._file(photo, name.endswith("_t.jpg"))

    def _file(self, photo: Photo, thumb: bool) -> Response:
        bandwidth = float(self.fault_setting("download_bandwidth") or 0)
        if thumb:
            data = images.jpeg_bytes(photo.key + "_t", 1024)
            return Response(200, data, "image/jpeg", bandwidth=bandwidth)
        behaviour = photo.behaviour
        if behaviour == "gone":
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        if behaviour == "error500":
            return s3_error(500, "InternalError", "We encountered an internal error. Please try again.")
        if behaviour == "empty":
            return Response(200, b"", photo.content_type)
        if behaviour == "notimage":
            return Response(200, _not_image(photo.body_size), photo.content_type)
        size = len(photo.body) if photo.body is not None else photo.body_size
        response = Response(200, content_type=photo.content_type, stream=photo.chunks, length=size, bandwidth=bandwidth)
        if behaviour == "short":
            response.stop_after = size // 2
        return response

    # -- admin ---------------------------------------------------------------------------

    def _admin_client(self, req: Request) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict) or not body.get("client_id") or not body.get("client_secret"):
            return json_response(400, {"error": "client_id and client_secret are required"})
        self.add_client(str(body["client_id"]), str(body["client_secret"]))
        return json_response(200, {"client_id": body["client_id"]})

    def _admin_refresh_token(self, req: Request) -> Response:
        body = admin_json(req) or {}
        client_id = body.get("client_id", DEFAULT_CLIENT[0]) if isinstance(body, dict) else None
        with self.lock:
            known = isinstance(client_id, str) and client_id in self.clients
        if not known or not isinstance(client_id, str):
            return json_response(400, {"error": f"unknown client {client_id!r}"})
        return json_response(200, {"refresh_token": self.issue_refresh_token(client_id)})

    def add_photo(
        self, project_id: str, record: dict[str, Any], *, body: bytes | None = None, size: int | None = None
    ) -> Photo:
        """Store ``record`` as given; its bytes are ``body`` or a generated file of ``size`` bytes."""
        with self.lock:
            project = self.projects.setdefault(project_id, Project(project_id))
            key = record.get("id")
            if not isinstance(key, str) or not key or "/" in key or key in project.photos:
                self.anon += 1
                key = f"_record-{self.anon}"
            if size is None:
                announced = record.get("size")
                valid = isinstance(announced, int) and not isinstance(announced, bool) and announced >= 0
                size = announced if valid and isinstance(announced, int) else 2048
            photo = Photo(
                key=key,
                project_id=project_id,
                record=record,
                object_id=self.new_uuid(),
                body_size=size if body is None else len(body),
                body=body,
                video=record.get("mediaType") == "VIDEO",
            )
            project.photos[key] = photo
            project.index(photo)
            self.objects[photo.object_id] = photo
            return photo

    def _admin_add_photos(self, req: Request) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict) or not isinstance(body.get("project_id"), str):
            return json_response(400, {"error": "project_id is required"})
        records = body.get("photos") or []
        bodies = body.get("bodies") or {}
        if not isinstance(records, list) or not isinstance(bodies, dict):
            return json_response(400, {"error": "photos must be a list and bodies an object"})
        keys = []
        for record in records:
            if not isinstance(record, dict):
                return json_response(400, {"error": "every photo must be an object"})
            data = bodies.get(record.get("id")) if isinstance(record.get("id"), str) else None
            raw = base64.b64decode(data) if isinstance(data, str) else None
            keys.append(self.add_photo(body["project_id"], record, body=raw).key)
        with self.lock:
            self.projects.setdefault(body["project_id"], Project(body["project_id"]))
        return json_response(200, {"ids": keys})

    def seed_photos(
        self,
        project_id: str,
        count: int = 10,
        start: str = "2024-01-01T00:00:00",
        end: str = "2024-02-01T00:00:00",
        seed: int | None = None,
        deleted: int = 0,
        videos: int = 0,
        min_size: int = 2 * 1024,
        max_size: int = 20 * 1024,
    ) -> list[str]:
        lo, hi = parse_time(start), parse_time(end)
        if lo is None or hi is None or hi <= lo:
            raise ValueError("start and end must be timestamps with start < end")
        if min_size < 0 or max_size < min_size:
            raise ValueError("need 0 <= min_size <= max_size")
        if deleted + videos > count:
            raise ValueError("deleted + videos exceeds count")
        with self.lock:
            project = self.projects.setdefault(project_id, Project(project_id))
            self.seed_calls += 1
            tag = seed if seed is not None else f"{self.seed}/{self.seed_calls}"
            rng = random.Random(f"seed:{tag}:{project_id}:{len(project.photos)}")
            span = int(hi - lo)
            picks = rng.sample(range(count), deleted + videos)
            deleted_set, video_set = set(picks[:deleted]), set(picks[deleted:])
            ids = []
            for n in range(count):
                photo_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                created = lo + (rng.randrange(span) if span > 0 else 0)
                taken = created - rng.randrange(0, 3 * 86400)
                updated = created + rng.randrange(0, 7200)
                user = rng.choice(USERS)
                video = n in video_set
                title = "" if rng.random() < 0.1 else rng.choice(TITLES)
                if video:
                    title = title and f"{title} (walkthrough video)"
                record: dict[str, Any] = {
                    "createdAt": acc_time(created),
                    "createdBy": user,
                    "deletedAt": None,
                    "deletedBy": None,
                    "description": rng.choice(DESCRIPTIONS) if rng.random() < 0.35 else rng.choice(["", None]),
                    "id": photo_id,
                    "isPublic": rng.random() < 0.2,
                    "latitude": round(-33.86 + rng.uniform(-0.2, 0.2), 6) if rng.random() < 0.7 else None,
                    "locked": False,
                    "longitude": round(151.2 + rng.uniform(-0.2, 0.2), 6) if rng.random() < 0.7 else None,
                    "mediaType": "VIDEO" if video else "NORMAL",
                    "projectId": project_id,
                    "size": 0,
                    "takenAt": acc_time(taken),
                    "title": title,
                    "type": rng.choice(TYPES),
                    "updatedAt": acc_time(updated),
                    "updatedBy": user,
                    "userCreatedAt": acc_time(created - rng.randrange(0, 600)),
                }
                if record["latitude"] is None:
                    record["longitude"] = None
                if n in deleted_set:
                    record["deletedAt"] = acc_time(updated + rng.randrange(60, 86400))
                    record["deletedBy"] = rng.choice(USERS)
                digest = hashlib.sha256(photo_id.encode()).digest()
                size = min_size + int.from_bytes(digest[:8], "big") % (max_size - min_size + 1)
                record["size"] = size
                self.add_photo(project_id, record, size=size)
                ids.append(photo_id)
            return ids

    def _admin_seed(self, req: Request) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict) or not isinstance(body.get("project_id"), str):
            return json_response(400, {"error": "project_id is required"})
        args = {
            k: body[k]
            for k in ("count", "start", "end", "seed", "deleted", "videos", "min_size", "max_size")
            if k in body and body[k] is not None
        }
        try:
            ids = self.seed_photos(body["project_id"], **args)
        except (ValueError, TypeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, {"ids": ids})

    def find_photo(self, photo_id: str, project_id: str | None = None) -> Photo | None:
        with self.lock:
            projects = [self.projects[project_id]] if project_id in self.projects else list(self.projects.values())
            for project in projects:
                if photo_id in project.photos:
                    return project.photos[photo_id]
        return None

    def _admin_patch_photo(self, req: Request, photo_id: str) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict):
            return json_response(400, {"error": "expected an object of fields"})
        photo = self.find_photo(photo_id, req.arg("project_id"))
        if photo is None:
            return json_response(404, {"error": f"no photo {photo_id}"})
        with self.lock:
            project = self.projects[photo.project_id]
            project.unindex(photo)
            if "updatedAt" not in body:  # an edit in ACC moves updatedAt, unless the test sets it
                body = {**body, "updatedAt": acc_time(self.now())}
            photo.record.update(body)
            project.index(photo)
            return json_response(200, photo.record)

    def _admin_delete_photo(self, req: Request, photo_id: str) -> Response:
        """Soft-delete, as a user deleting a photo in ACC: ``deletedAt``/``deletedBy`` set, ``updatedAt`` moved."""
        body = req.json()
        body = {} if body is None else body  # no body: deleted by the first sandbox user
        if not isinstance(body, dict):
            return json_response(400, {"error": "expected an object"})
        by = body.get("deletedBy", USERS[0])
        if not isinstance(by, str) or not by:
            return json_response(400, {"error": "deletedBy must be a non-empty string"})
        photo = self.find_photo(photo_id, req.arg("project_id"))
        if photo is None:
            return json_response(404, {"error": f"no photo {photo_id}"})
        now = acc_time(self.now())
        with self.lock:
            if not photo.record.get("deletedAt"):
                photo.record.update({"deletedAt": now, "deletedBy": by, "updatedAt": now, "updatedBy": by})
            return json_response(200, photo.record)

    def _admin_behaviour(self, req: Request, photo_id: str) -> Response:
        body = admin_json(req)
        behaviour = body.get("download") if isinstance(body, dict) else None
        if behaviour not in BEHAVIOURS:
            return json_response(400, {"error": f"download must be one of {', '.join(BEHAVIOURS)}"})
        photo = self.find_photo(photo_id, req.arg("project_id"))
        if photo is None:
            return json_response(404, {"error": f"no photo {photo_id}"})
        photo.behaviour = behaviour
        return json_response(200, {"id": photo_id, "download": behaviour})

    def photo_sha256(self, photo: Photo) -> str:
        if photo.behaviour == "empty":
            return hashlib.sha256(b"").hexdigest()
        if photo.behaviour == "notimage":
            return hashlib.sha256(_not_image(photo.body_size)).hexdigest()
        if photo.sha256 is None:
            photo.sha256 = images.sha256_of(iter(photo.chunks()))[0]
        return photo.sha256

    def _admin_photos(self, req: Request) -> Response:
        project_id = req.arg("project_id")
        with self.lock:
            if project_id is not None:
                projects = [self.projects[project_id]] if project_id in self.projects else []
            else:
                projects = list(self.projects.values())
            photos = [p.photos[key] for p in projects for _, key in p.by_created]
        out = []
        for photo in photos:
            record = dict(photo.record)
            if "mediaType" in record:
                record["mediaType"] = self.served_media_type(photo)  # what ACC has, as served
            record["sha256"] = self.photo_sha256(photo)
            record["download"] = photo.behaviour
            if "id" not in record or record.get("id") != photo.key:
                record["_key"] = photo.key
            out.append(record)
        return json_response(200, {"photos": out})


def _page_arg(raw: str | None, default: int, name: str, minimum: int = 0) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, got {raw!r}")
    return int(raw)


def _not_image(size: int) -> bytes:
    text = b"<html><body>This object is not an image. Request id: sandbox.</body></html>\n"
    return text * max(1, min(size, 8192) // len(text))
