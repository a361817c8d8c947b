"""BuildPass public API emulator: client-credentials sign-in, attachments, photos, folders."""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from sandbox import images
from sandbox.http import (
    App,
    BodyError,
    BodyReader,
    HttpError,
    Request,
    Response,
    admin_json,
    empty_response,
    iso_z,
    json_response,
)

DEFAULT_CLIENT = ("bp-demo-client", "bp-demo-secret")
DEFAULT_BUILDER = "buil_demo"
DEFAULT_PROJECT = ("proj_demo", "Demo project")
AUDIENCE = "https://api.buildpass.global"
API_VERSION = "v1"
ACCESS_TTL = 3600
REGIONS = ("au1", "us1")
SCOPES = ("read:photos", "write:photos")
KNOWN_SCOPES = (*SCOPES, "read:projects", "read:workers", "offline_access")
BUILDER = r"/builders/(?P<builder_id>[^/]+)"
HEAD_BYTES = 64
MAX_FIELD = 1024 * 1024
MAX_FILE_NAME = 255
DEFAULT_REJECT = "photo failed validation"
LISTING_CAP = 100  # photos per listing under the answer listing=capped or paged
# Answers of the photo listing read back by `acc-buildpass verify` (the first is today's behaviour):
# ``listing`` full | paged (the first LISTING_CAP, with a ``next`` hint) | capped (the first LISTING_CAP,
# no hint); ``external_source_id`` none (the photo object carries none) | metadata (in ``metadata``).
LISTING_ANSWERS: dict[str, tuple[str, ...]] = {
    "listing": ("full", "paged", "capped"),
    "external_source_id": ("none", "metadata"),
}
# Answers at BuildPass's other undocumented edges (SPEC.md, "Answers"; the first is today's
# behaviour, the last the worst plausible one).
EDGE_ANSWERS: dict[str, tuple[str, ...]] = {
    "limits": ("none", "tight"),
    "upload_order": ("index", "unnamed", "shuffled"),
    "token_api_version": ("optional", "required"),
    "created_ids": ("photo_ids", "attachment_keys", "absent"),
    "upsert_reply": ("complete", "partial"),
}
TIGHT_UPLOAD_FILES = 10  # files per bulk-upload under limits=tight
TIGHT_UPSERT_PHOTOS = 20  # photos per bulk-upsert under limits=tight
TIGHT_REQUEST_BYTES = 4 * 1024 * 1024  # bytes per bulk-upload request under limits=tight


# -- multipart/form-data, streamed ------------------------------------------------------------


class MultipartError(Exception):
    pass


@dataclass
class Part:
    name: str | None
    filename: str | None
    content_type: str | None
    size: int = 0
    head: bytes = b""
    value: bytes = b""  # kept only for fields without a filename (at most MAX_FIELD bytes)
    _hash: Any = field(default_factory=hashlib.sha256, repr=False)

    @property
    def is_file(self) -> bool:
        return self.filename is not None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self._hash.update(data)
        if len(self.head) < HEAD_BYTES:
            self.head += data[: HEAD_BYTES - len(self.head)]
        if not self.is_file:
            if len(self.value) + len(data) > MAX_FIELD:
                raise MultipartError(f"field {self.name!r} is too large")
            self.value += data
        self.size += len(data)

    @property
    def text(self) -> str:
        return self.value.decode("utf-8", "replace")


_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def header_params(value: str) -> tuple[str, dict[str, str]]:
    """``form-data; name="file"; filename="a.jpg"`` -> ("form-data", {name, filename})."""
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(";" + rest):
        key, raw = m.group(1).lower(), m.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        if key.endswith("*"):  # RFC 5987: charset'lang'percent-encoded
            charset, _, encoded = raw.partition("'")
            _, _, encoded = encoded.partition("'")
            try:
                raw = unquote(encoded, encoding=charset or "utf-8", errors="strict")
            except (LookupError, UnicodeDecodeError):
                continue
            key = key[:-1]
            params[key] = raw
            continue
        params.setdefault(key, raw)
    return main.strip().lower(), params


def boundary_of(content_type: str | None) -> bytes:
    kind, params = header_params(content_type or "")
    boundary = params.get("boundary", "")
    if kind != "multipart/form-data" or not 1 <= len(boundary) <= 200:
        raise MultipartError("Content-Type must be multipart/form-data with a boundary")
    return boundary.encode("latin-1", "replace")


def parse_multipart(reader: BodyReader, boundary: bytes, *, max_parts: int = 10000) -> list[Part]:
    """Every part of the body, hashed as it streams by; file bytes are never kept."""
    sep = b"\r\n--" + boundary
    buf = bytearray(b"\r\n")  # so the first delimiter looks like every other one
    eof = False

    def fill() -> None:
        nonlocal eof
        data = reader.read(256 * 1024)
        if not data:
            eof = True
        buf.extend(data)

    # preamble
    while True:
        i = buf.find(sep)
        if i >= 0:
            del buf[: i + len(sep)]
            break
        if eof:
            raise MultipartError("no multipart boundary in the body")
        keep = len(sep) - 1
        if len(buf) > keep:
            del buf[: len(buf) - keep]
        fill()
    parts: list[Part] = []
    while True:
        # after a delimiter: "--" ends the body, else optional whitespace and CRLF
        while len(buf) < 2 and not eof:
            fill()
        if buf[:2] == b"--":
            break
        while b"\r\n" not in buf[:1024] and len(buf) < 1024 and not eof:
            fill()
        end = buf.find(b"\r\n")
        if end < 0 or buf[:end].strip(b" \t"):
            raise MultipartError("malformed multipart delimiter line")
        del buf[: end + 2]
        # headers
        while True:
            hend = buf.find(b"\r\n\r\n")
            if hend >= 0 or (buf.startswith(b"\r\n")):
                break
            if len(buf) > 16384:
                raise MultipartError("part headers too large")
            if eof:
                raise MultipartError("body ended inside part headers")
            fill()
        if buf.startswith(b"\r\n"):
            header_blob, skip = b"", 2
        else:
            header_blob, skip = bytes(buf[:hend]), hend + 4
        del buf[:skip]
        headers: dict[str, str] = {}
        for line in header_blob.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip().lower()] = value.strip()
        disposition, params = header_params(headers.get("content-disposition", ""))
        if disposition != "form-data":
            raise MultipartError("every part needs Content-Disposition: form-data")
        part = Part(name=params.get("name"), filename=params.get("filename"), content_type=headers.get("content-type"))
        parts.append(part)
        if len(parts) > max_parts:
            raise MultipartError("too many parts")
        # body of the part, up to the next delimiter
        while True:
            i = buf.find(sep)
            if i >= 0:
                part.feed(bytes(buf[:i]))
                del buf[: i + len(sep)]
                break
            if eof:
                raise MultipartError("body ended before the closing boundary")
            safe = len(buf) - (len(sep) - 1)
            if safe > 0:
                part.feed(bytes(buf[:safe]))
                del buf[:safe]
            fill()
    reader.drain()  # epilogue
    return parts


# -- state ------------------------------------------------------------------------------------


def parse_datetime(value: Any) -> float | None:
    """Epoch seconds of an RFC 3339 date-time (a zone is required), else None."""
    if not isinstance(value, str) or not re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|z|[+-]\d\d:\d\d)", value.strip()
    ):
        return None
    text = value.strip()
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def bad_file_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "fileName is required"
    if len(value) > MAX_FILE_NAME:
        return f"fileName is longer than {MAX_FILE_NAME} characters"
    if (
        "/" in value
        or "\\" in value
        or any(ord(c) < 32 or ord(c) == 127 for c in value)
        or value.strip() in (".", "..")
    ):
        return "fileName contains characters that are not allowed"
    return None


class BuildPassApp(App):
    name = "buildpass"
    default_rate_limit = (100, 10.0)
    answer_choices = {**LISTING_ANSWERS, **EDGE_ANSWERS}

    def reset_state(self) -> None:
        self.clients: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.projects: dict[tuple[str, str], dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, dict[str, Any]] = {}
        self.photos: dict[str, dict[str, Any]] = {}
        self.upserted: dict[tuple[str, str, str], str] = {}  # (builder, project, externalSourceId) -> photo id
        self.rejects: dict[str, str] = {}  # externalSourceId -> validation message (POST /_admin/reject)
        self.dropped: set[str] = set()  # externalSourceIds an upsert left out once (upsert_reply=partial)
        self.order_rng = random.Random(f"{self.seed}:buildpass:upload-order")
        self.add_client(*DEFAULT_CLIENT, [DEFAULT_BUILDER])
        self.add_project(DEFAULT_BUILDER, *DEFAULT_PROJECT)

    def setup_routes(self) -> None:
        self.route("POST", r"/oauth/token", "token", self.token)
        self.route("POST", BUILDER + r"/attachments/upload", "upload", self.upload)
        self.route("POST", BUILDER + r"/attachments/bulk-upload", "bulk-upload", self.bulk_upload)
        self.route("POST", BUILDER + r"/photos", "photos-create", self.create_photo)
        self.route("GET", BUILDER + r"/photos", "photos-list", self.list_photos, read=True)
        self.route("GET", BUILDER + r"/photos/(?P<photo_id>[^/]+)", "photo", self.get_photo, read=True)
        self.route("PATCH", BUILDER + r"/photos/(?P<photo_id>[^/]+)", "photo", self.patch_photo)
        self.route("POST", BUILDER + r"/photo-gallery/bulk-upsert", "bulk-upsert", self.bulk_upsert)
        self.route("DELETE", BUILDER + r"/photo-gallery/bulk-upsert", "bulk-upsert-delete", self.bulk_archive)
        self.route("GET", BUILDER + r"/photo-folders", "folders", self.list_folders, read=True)
        self.route("POST", BUILDER + r"/photo-folders", "folders", self.create_folder)
        self.route("GET", BUILDER + r"/photo-folders/(?P<folder_id>[^/]+)", "folder", self.get_folder, read=True)
        self.route("PATCH", BUILDER + r"/photo-folders/(?P<folder_id>[^/]+)", "folder", self.patch_folder)
        self.route("DELETE", BUILDER + r"/photo-folders/(?P<folder_id>[^/]+)", "folder", self.delete_folder)
        self.admin("POST", r"/clients", self._admin_client)
        self.admin("POST", r"/projects", self._admin_project)
        self.admin("GET", r"/photos", self._admin_photos)
        self.admin("GET", r"/attachments", self._admin_attachments)
        self.admin("GET", r"/folders", self._admin_folders)
        self.admin("GET", r"/reject", lambda req: json_response(200, {"rejects": self.reject_rules()}))
        self.admin("POST", r"/reject", self._admin_reject)

    # -- error shapes ----------------------------------------------------------------------

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        payload: dict[str, Any] = {"message": message}
        if code:
            payload["code"] = code
        return json_response(status, {"error": payload})

    def rate_limited(self, headers: list[tuple[str, str]], wait: float) -> Response:
        return json_response(429, {"error": {"message": "Rate limit exceeded. Please try again later."}})

    def limit_headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return headers

    def fault_limit_headers(self, headers: list[tuple[str, str]], wait: float) -> list[tuple[str, str]]:
        reset = str(math.ceil(time.time() + wait))
        limit = dict(headers).get("X-RateLimit-Limit", str(self.default_rate_limit[0]))
        return [("X-RateLimit-Limit", limit), ("X-RateLimit-Remaining", "0"), ("X-RateLimit-Reset", reset)]

    # -- admin-facing state ------------------------------------------------------------------

    def add_client(self, client_id: str, secret: str, builder_ids: list[str], scopes: list[str] | None = None) -> None:
        with self.lock:
            self.clients[client_id] = {
                "secret": secret,
                "builders": set(builder_ids),
                "scopes": set(scopes or SCOPES),
            }
        self.remember_secret(secret)

    def add_project(self, builder_id: str, project_id: str, name: str = "") -> None:
        with self.lock:
            self.projects[(builder_id, project_id)] = {
                "id": project_id,
                "builderId": builder_id,
                "name": name or project_id,
            }

    def _admin_client(self, req: Request) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict) or not body.get("client_id") or not body.get("client_secret"):
            return json_response(400, {"error": "client_id and client_secret are required"})
        builders = body.get("builder_ids") or []
        scopes = body.get("scopes")
        if not isinstance(builders, list) or (scopes is not None and not isinstance(scopes, list)):
            return json_response(400, {"error": "builder_ids and scopes must be lists"})
        self.add_client(str(body["client_id"]), str(body["client_secret"]), [str(b) for b in builders], scopes)
        return json_response(200, {"client_id": body["client_id"], "builder_ids": builders})

    def _admin_project(self, req: Request) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict) or not body.get("builder_id") or not body.get("project_id"):
            return json_response(400, {"error": "builder_id and project_id are required"})
        self.add_project(str(body["builder_id"]), str(body["project_id"]), str(body.get("name") or ""))
        return json_response(200, {"builder_id": body["builder_id"], "project_id": body["project_id"]})

    def ground_truth(self, builder_id: str | None = None) -> list[dict[str, Any]]:
        keys = (
            "id", "builderId", "projectId", "folderId", "fileName", "contentType", "description", "capturedAt",
            "externalSourceId", "sha256", "size", "createdVia", "archivedAt", "createdAt", "key",
            "sourceExternalId", "sourceApp",
        )  # fmt: skip
        with self.lock:
            return [
                {k: p.get(k) for k in keys}
                for p in self.photos.values()
                if builder_id is None or p["builderId"] == builder_id
            ]

    def _admin_photos(self, req: Request) -> Response:
        return json_response(200, {"photos": self.ground_truth(req.arg("builder_id"))})

    def _admin_attachments(self, req: Request) -> Response:
        builder_id = req.arg("builder_id")
        with self.lock:
            out = [dict(a) for a in self.attachments.values() if builder_id is None or a["builderId"] == builder_id]
        return json_response(200, {"attachments": out})

    def reject_rules(self) -> dict[str, str]:
        with self.lock:
            return dict(self.rejects)

    def _admin_reject(self, req: Request) -> Response:
        """``{"externalSourceId", "message"?}`` refuses that photo from now on; ``{"clear": true}`` forgets
        every rule (with an ``externalSourceId``, only that one)."""
        body = admin_json(req)
        ext = body.get("externalSourceId") if isinstance(body, dict) else None
        if isinstance(body, dict) and body.get("clear") is True:
            with self.lock:
                if isinstance(ext, str):
                    self.rejects.pop(ext, None)
                else:
                    self.rejects.clear()
            return json_response(200, {"rejects": self.reject_rules()})
        message = body.get("message", DEFAULT_REJECT) if isinstance(body, dict) else None
        if not isinstance(ext, str) or not ext or not isinstance(message, str) or not message:
            return json_response(
                400, {"error": 'expected {"externalSourceId": "<id>", "message": "<text>"} or {"clear": true}'}
            )
        with self.lock:
            self.rejects[ext] = message
        return json_response(200, {"rejects": self.reject_rules()})

    def _rejected(self, entry: dict[str, Any]) -> str | None:
        """The validation message of a reject rule for this photo's externalSourceId, if any."""
        ext = entry.get("externalSourceId")
        with self.lock:
            return self.rejects.get(ext) if isinstance(ext, str) else None

    def _admin_folders(self, req: Request) -> Response:
        builder_id = req.arg("builder_id")
        with self.lock:
            out = [dict(f) for f in self.folders.values() if builder_id is None or f["builderId"] == builder_id]
        return json_response(200, {"folders": out})

    # -- sign-in ---------------------------------------------------------------------------

    @staticmethod
    def _oauth_error(status: int, error: str, description: str) -> Response:
        return json_response(status, {"error": error, "error_description": description})

    def token(self, req: Request) -> Response:
        if self.answer("token_api_version") == "required" and req.header("X-BuildPass-Api-Version") != API_VERSION:
            return self.error(400, f"X-BuildPass-Api-Version: {API_VERSION} header is required", "invalid_api_version")
        content_type = (req.header("Content-Type") or "").lower()
        if "json" in content_type:
            body = req.json()
            if not isinstance(body, dict):
                return self._oauth_error(400, "invalid_request", "the body must be a JSON object")
            form = {k: v for k, v in body.items() if isinstance(v, str)}
        else:
            form = req.form()
        creds = req.basic_auth()
        client_id, secret = creds if creds else (form.get("client_id"), form.get("client_secret"))
        grant = form.get("grant_type")
        if not grant:
            return self._oauth_error(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            return self._oauth_error(400, "unsupported_grant_type", f"grant_type {grant!r} is not supported here")
        if not client_id or not secret:
            return self._oauth_error(400, "invalid_request", "client_id and client_secret are required")
        with self.lock:
            client = self.clients.get(client_id)
        if client is None or not hmac.compare_digest(client["secret"].encode(), secret.encode()):
            return self._oauth_error(401, "invalid_client", "Client authentication failed")
        audience = form.get("audience")
        if audience is not None and audience.rstrip("/") not in (AUDIENCE, self.base_url):
            return self._oauth_error(400, "invalid_request", f"unknown audience {audience!r}")
        requested = form.get("scope")
        if requested is None:
            scopes = set(client["scopes"])
        else:
            scopes = set(requested.split())
            unknown = scopes - set(KNOWN_SCOPES)
            if unknown or not scopes <= client["scopes"]:
                return self._oauth_error(400, "invalid_scope", f"scope not allowed: {' '.join(sorted(scopes))}")
        ttl = int(self.fault_setting("access_token_ttl") or ACCESS_TTL)
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = {"client_id": client_id, "expires": self.now() + ttl, "scopes": scopes}
        self.remember_secret(token)
        scope_text = " ".join(sorted(scopes))
        return json_response(
            200, {"access_token": token, "token_type": "Bearer", "expires_in": ttl, "scope": scope_text}
        )

    def _authorize(self, req: Request, builder_id: str, scope: str | None = None) -> dict[str, Any]:
        if req.header("X-BuildPass-Api-Version") != API_VERSION:
            raise HttpError(
                self.error(400, f"X-BuildPass-Api-Version: {API_VERSION} header is required", "invalid_api_version")
            )
        token = req.bearer()
        with self.lock:
            state = self.tokens.get(token) if token else None
            client = self.clients.get(state["client_id"]) if state else None
        if state is None or client is None or state["expires"] <= self.now():
            raise HttpError(
                self.error(401, "Unauthorized: the access token is missing, invalid or expired", "unauthorized")
            )
        if builder_id not in client["builders"]:
            raise HttpError(self.error(403, f"Forbidden: no access to builder {builder_id}", "forbidden"))
        if scope and scope not in state["scopes"]:
            raise HttpError(self.error(403, f"Forbidden: the token lacks the {scope} scope", "insufficient_scope"))
        return state

    @staticmethod
    def _region(req: Request) -> str:
        region = (req.header("X-BuildPass-Region-Id") or "").lower()
        return region if region in REGIONS else "au1"

    def _project_exists(self, builder_id: str, project_id: Any) -> bool:
        with self.lock:
            return isinstance(project_id, str) and (builder_id, project_id) in self.projects

    def _json_object(self, req: Request) -> dict[str, Any]:
        body = req.json(required=True)
        if not isinstance(body, dict):
            raise HttpError(self.error(400, "the body must be a JSON object", "invalid_request"))
        return body

    # -- attachments -----------------------------------------------------------------------

    def _parts(self, req: Request) -> list[Part]:
        try:
            boundary = boundary_of(req.header("Content-Type"))
            return parse_multipart(req.body, boundary)
        except MultipartError as exc:
            raise HttpError(self.error(400, f"bad multipart body: {exc}", "invalid_request")) from None
        except BodyError as exc:
            raise HttpError(self.error(400, f"unreadable body: {exc}", "invalid_request")) from None

    def _check_file(self, part: Part, label: str) -> str:
        if part.size == 0:
            raise HttpError(self.error(400, f"{label}: the file is empty", "invalid_file"))
        sniffed = images.sniff_image(part.head)
        if sniffed is None:
            raise HttpError(self.error(400, f"{label}: the file is not an image", "invalid_file"))
        return sniffed

    def _attachment(self, req: Request, builder_id: str, part: Part, sniffed: str) -> dict[str, Any]:
        key = f"att_{self.new_id(length=24)}"
        region = self._region(req)
        content_type = (part.content_type or "").split(";")[0].strip().lower()
        if not content_type.startswith("image/"):
            content_type = sniffed
        file_name = part.filename or "upload"
        with self.lock:
            self.attachments[key] = {
                "key": key,
                "builderId": builder_id,
                "regionId": region,
                "fileName": file_name,
                "contentType": content_type,
                "sha256": part.sha256,
                "size": part.size,
                "createdAt": iso_z(self.now()),
            }
        return {
            "key": key,
            "type": "attachment",
            "regionId": region,
            "imageUrl": self._image_url(req, key),
            "fileName": file_name,
            "contentType": content_type,
        }

    def _image_url(self, req: Request, key: str) -> str:
        expires = int(self.now()) + 900
        sig = hmac.new(b"sandbox", f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]
        return f"{req.base_url}/files/{key}?expires={expires}&signature={sig}"

    def upload(self, req: Request, builder_id: str) -> Response:
        self._authorize(req, builder_id)
        parts = self._parts(req)
        files = [p for p in parts if p.name == "file"]
        types = [p for p in parts if p.name == "type"]
        if len(files) != 1:
            return self.error(400, "exactly one 'file' part is required", "invalid_request")
        if not types or types[0].text != "attachment":
            return self.error(400, "'type' must be 'attachment'", "invalid_request")
        sniffed = self._check_file(files[0], "file")
        return json_response(201, self._attachment(req, builder_id, files[0], sniffed))

    def bulk_upload(self, req: Request, builder_id: str) -> Response:
        self._authorize(req, builder_id)
        length = req.header("Content-Length") or ""
        if self.answer("limits") == "tight" and length.isdigit() and int(length) > TIGHT_REQUEST_BYTES:
            return self.error(413, "Request entity too large", "payload_too_large")
        parts = self._parts(req)
        files: dict[int, Part] = {}
        types: dict[int, str] = {}
        for part in parts:
            m = re.fullmatch(r"(file|type):(\d{1,6})", part.name or "")
            if not m:
                return self.error(400, f"unexpected field {part.name!r}: use file:N and type:N", "invalid_request")
            index = int(m.group(2))
            target: dict[int, Any] = files if m.group(1) == "file" else types
            if index in target:
                return self.error(400, f"{part.name} is given twice", "invalid_request")
            target[index] = part if m.group(1) == "file" else part.text
        if not files:
            return self.error(400, "no files: send file:0, type:0, file:1, ...", "invalid_request")
        for index in sorted(set(files) | set(types)):
            if index not in files:
                return self.error(400, f"file:{index} is missing (type:{index} was given)", "invalid_request")
            if types.get(index) != "attachment":
                return self.error(400, f"type:{index} must be 'attachment'", "invalid_request")
        if sorted(files) != list(range(len(files))):
            return self.error(400, "file indexes must run 0, 1, 2, ... without gaps", "invalid_request")
        if self.answer("limits") == "tight" and len(files) > TIGHT_UPLOAD_FILES:
            return self.error(400, "Too many files in one request", "invalid_request")
        sniffed = {i: self._check_file(files[i], f"file:{i}") for i in sorted(files)}
        uploads = [self._attachment(req, builder_id, files[i], sniffed[i]) for i in sorted(files)]
        return json_response(201, {"uploads": self._in_answer_order(uploads)})

    def _in_answer_order(self, uploads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The bulk-upload's answers under ``upload_order``: in index order, in index order
        without ``fileName``, or shuffled (never left in index order when there are two or more)."""
        order = self.answer("upload_order")
        if order == "unnamed":
            return [{k: v for k, v in u.items() if k != "fileName"} for u in uploads]
        if order == "shuffled" and len(uploads) > 1:
            shuffled = list(uploads)
            with self.meta_lock:
                self.order_rng.shuffle(shuffled)
            return shuffled if shuffled != uploads else uploads[1:] + uploads[:1]
        return uploads

    # -- photos ------------------------------------------------------------------------------

    def photo_json(self, req: Request, photo: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": photo["id"],
            "builderId": photo["builderId"],
            "projectId": photo["projectId"],
            "folderId": photo["folderId"],
            "fileName": photo["fileName"],
            "contentType": photo["contentType"],
            "key": photo["key"],
            "fileSize": str(photo["size"]),
            "description": photo["description"],
            "photoTakenDate": photo["capturedAt"],
            "sortDate": photo["capturedAt"] or photo["createdAt"],
            "metadata": self._metadata_json(photo),
            "createdAt": photo["createdAt"],
            "updatedAt": photo["updatedAt"],
            "archivedAt": photo["archivedAt"],
            "imageUrl": self._image_url(req, photo["key"]),
        }

    def _metadata_json(self, photo: dict[str, Any]) -> dict[str, Any]:
        """The photo's ``metadata``; with the answer external_source_id=metadata, its externalSourceId too."""
        metadata = dict(photo["metadata"])
        if self.answer("external_source_id") == "metadata" and photo["externalSourceId"] is not None:
            metadata["externalSourceId"] = photo["externalSourceId"]
        return metadata

    def _listing_json(self, data: list[dict[str, Any]]) -> dict[str, Any]:
        """The listing's body under the answer ``listing``: every photo, or the first LISTING_CAP
        with a ``next`` hint (paged) or without one (capped)."""
        shape = self.answer("listing")
        if shape == "full" or len(data) <= LISTING_CAP:
            return {"data": data}
        if shape == "paged":
            return {"data": data[:LISTING_CAP], "next": f"cursor-{LISTING_CAP}"}
        return {"data": data[:LISTING_CAP]}

    def _new_photo(
        self,
        builder_id: str,
        project_id: str,
        folder_id: str | None,
        entry: dict[str, Any],
        attachment: dict[str, Any],
        captured: float | None,
        via: str,
        **extra: Any,
    ) -> dict[str, Any]:
        now = iso_z(self.now())
        description = entry.get("description")
        metadata = {k: entry[k] for k in ("width", "height", "sequenceId") if isinstance(entry.get(k), (int, float))}
        photo = {
            "id": self.new_id("phot_"),
            "builderId": builder_id,
            "projectId": project_id,
            "folderId": folder_id,
            "fileName": entry["fileName"],
            "contentType": entry.get("contentType") if isinstance(entry.get("contentType"), str) else "image/jpeg",
            "key": attachment["key"],
            "size": attachment["size"],
            "sha256": attachment["sha256"],
            "description": description if isinstance(description, str) else None,
            "capturedAt": iso_z(captured) if captured is not None else None,
            "metadata": metadata,
            "createdAt": now,
            "updatedAt": now,
            "archivedAt": None,
            "externalSourceId": entry.get("externalSourceId")
            if isinstance(entry.get("externalSourceId"), str)
            else None,
            "createdVia": via,
            **extra,
        }
        with self.lock:
            self.photos[photo["id"]] = photo
        return photo

    def _image_of(self, builder_id: str, entry: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        """(attachment, None) or (None, the reason)."""
        ref = entry.get("imageAttachment")
        if ref is None:
            if entry.get("imageUrl") is not None:
                return None, "imageUrl host is not approved for imports"
            return None, "imageAttachment (or an approved imageUrl) is required"
        key = ref.get("key") if isinstance(ref, dict) else None
        with self.lock:
            attachment = self.attachments.get(key) if isinstance(key, str) else None
        if attachment is None or attachment["builderId"] != builder_id:
            return None, f"unknown attachment key {key!r}"
        return attachment, None

    def _folder_of(self, builder_id: str, project_id: Any, folder_id: Any) -> dict[str, Any] | None:
        with self.lock:
            folder = self.folders.get(folder_id) if isinstance(folder_id, str) else None
        if folder is None or folder["builderId"] != builder_id or folder["projectId"] != project_id:
            return None
        return folder

    def create_photo(self, req: Request, builder_id: str) -> Response:
        self._authorize(req, builder_id, "write:photos")
        body = self._json_object(req)
        problem = self._rejected(body) or bad_file_name(body.get("fileName"))
        if problem:
            return self.error(400, problem, "invalid_request")
        project_id = body.get("projectId")
        if not self._project_exists(builder_id, project_id):
            return self.error(
                400, f"projectId {project_id!r} is not a project of builder {builder_id}", "invalid_request"
            )
        folder_id = body.get("folderId")
        if folder_id is not None and self._folder_of(builder_id, project_id, folder_id) is None:
            return self.error(400, f"folderId {folder_id!r} is not a folder of this project", "invalid_request")
        captured = None
        if body.get("capturedAt") is not None:
            captured = parse_datetime(body["capturedAt"])
            if captured is None:
                return self.error(400, "capturedAt must be an ISO 8601 date-time with a time zone", "invalid_request")
        if body.get("description") is not None and not isinstance(body["description"], str):
            return self.error(400, "description must be a string", "invalid_request")
        attachment, reason = self._image_of(builder_id, body)
        if attachment is None:
            return self.error(400, reason or "bad image", "invalid_request")
        photo = self._new_photo(builder_id, str(project_id), folder_id, body, attachment, captured, "photos")
        return json_response(201, self.photo_json(req, photo))

    def _make_folder(self, builder_id: str, project_id: str, name: str) -> dict[str, Any]:
        now = iso_z(self.now())
        folder = {
            "id": self.new_id("fold_"),
            "builderId": builder_id,
            "projectId": project_id,
            "name": name,
            "createdAt": now,
            "updatedAt": now,
        }
        with self.lock:
            self.folders[folder["id"]] = folder
        return folder

    def bulk_upsert(self, req: Request, builder_id: str) -> Response:
        self._authorize(req, builder_id, "write:photos")
        body = self._json_object(req)
        project_id = body.get("projectId")
        if not isinstance(project_id, str) or not project_id:
            return self.error(400, "projectId is required", "invalid_request")
        if not self._project_exists(builder_id, project_id):
            return self.error(
                400, f"projectId {project_id!r} is not a project of builder {builder_id}", "invalid_request"
            )
        photos = body.get("photos")
        if not isinstance(photos, list):
            return self.error(400, "photos must be a list", "invalid_request")
        if self.answer("limits") == "tight" and len(photos) > TIGHT_UPSERT_PHOTOS:
            return self.error(400, "Too many photos in one request", "invalid_request")
        folder_id = body.get("folderId")
        if folder_id is not None:
            if self._folder_of(builder_id, project_id, folder_id) is None:
                return self.error(404, f"folder {folder_id!r} not found", "not_found")
        else:
            name = body.get("folderName")
            if not isinstance(name, str) or not name.strip():
                return self.error(400, "folderName is required when no folderId is given", "invalid_request")
            folder_id = self._make_folder(builder_id, project_id, name.strip())["id"]
        source_id = body.get("externalSourceId") if isinstance(body.get("externalSourceId"), str) else None
        source_app = body.get("sourceApp") if isinstance(body.get("sourceApp"), str) else None
        created: list[str] = []
        skipped: list[str] = []
        failed: list[dict[str, Any]] = []
        dropped = self._drop_one(builder_id, project_id, photos)
        for entry in photos:
            ext = entry.get("externalSourceId") if isinstance(entry, dict) else None
            if not isinstance(entry, dict) or not isinstance(ext, str) or not ext:
                failed.append(
                    {"externalSourceId": ext if isinstance(ext, str) else None, "error": "externalSourceId is required"}
                )
                continue
            if ext == dropped:
                continue  # not created, not named
            problem = self._rejected(entry) or bad_file_name(entry.get("fileName"))
            captured = None
            if problem is None and entry.get("capturedAt") is not None:
                captured = parse_datetime(entry["capturedAt"])
                if captured is None:
                    problem = "capturedAt must be an ISO 8601 date-time with a time zone"
            attachment = None
            if problem is None:
                attachment, problem = self._image_of(builder_id, entry)
            with self.lock:
                existing = self.upserted.get((builder_id, project_id, ext))
                if existing is not None and self.photos[existing]["archivedAt"] is None:
                    skipped.append(ext)
                    continue
                if problem is not None or attachment is None:
                    failed.append({"externalSourceId": ext, "error": problem or "bad photo"})
                    continue
                photo = self._new_photo(
                    builder_id, project_id, folder_id, entry, attachment, captured, "bulk-upsert",
                    sourceExternalId=source_id, sourceApp=source_app,
                )  # fmt: skip
                self.upserted[(builder_id, project_id, ext)] = photo["id"]
            created.append(photo["id"])
        reply: dict[str, Any] = {"folderId": folder_id}
        ids = self._created_ids(created)
        if ids is not None:
            reply["createdAttachmentIds"] = ids
        return json_response(200, {**reply, "skippedExternalSourceIds": skipped, "failedPhotos": failed})

    def _drop_one(self, builder_id: str, project_id: str, photos: list[Any]) -> str | None:
        """Under ``upsert_reply=partial``, the externalSourceId of the photo this call leaves out
        (not created, not named): the last new one of a call of two or more, once per photo."""
        if self.answer("upsert_reply") != "partial" or len(photos) < 2:
            return None
        with self.lock:
            for entry in reversed(photos):
                ext = entry.get("externalSourceId") if isinstance(entry, dict) else None
                if (
                    isinstance(ext, str)
                    and ext not in self.dropped
                    and (builder_id, project_id, ext) not in self.upserted
                ):
                    self.dropped.add(ext)
                    return ext
        return None

    def _created_ids(self, created: list[str]) -> list[str] | None:
        """``createdAttachmentIds`` under ``created_ids`` (photo ids, attachment keys, or absent:
        None, left out of the reply); under ``upsert_reply=partial`` every second one is missing."""
        answer = self.answer("created_ids")
        if answer == "absent":
            return None
        with self.lock:
            ids = created if answer == "photo_ids" else [self.photos[i]["key"] for i in created]
        return ids[::2] if self.answer("upsert_reply") == "partial" else ids

    def bulk_archive(self, req: Request, builder_id: str) -> Response:
        self._authorize(req, builder_id, "write:photos")
        body = self._json_object(req)
        source_id, project_id = body.get("externalSourceId"), body.get("projectId")
        if not isinstance(source_id, str) or not isinstance(project_id, str):
            return self.error(400, "externalSourceId and projectId are required", "invalid_request")
        archived = []
        now = iso_z(self.now())
        with self.lock:
            for photo in self.photos.values():
                if (
                    photo["builderId"] == builder_id
                    and photo["projectId"] == project_id
                    and photo.get("sourceExternalId") == source_id
                    and photo["archivedAt"] is None
                ):
                    photo["archivedAt"] = photo["updatedAt"] = now
                    archived.append(photo["id"])
        return json_response(200, {"archivedPhotoIds": archived})

    def list_photos(self, req: Request, builder_id: str) -> Response:
        self._authorize(req, builder_id, "read:photos")
        project_id, folder_id = req.arg("projectId"), req.arg("folderId")
        if project_id is not None and not self._project_exists(builder_id, project_id):
            return self.error(404, f"project {project_id!r} not found", "not_found")
        with self.lock:
            found = [
                p
                for p in self.photos.values()
                if p["builderId"] == builder_id
                and p["archivedAt"] is None
                and (project_id is None or p["projectId"] == project_id)
                and (folder_id is None or p["folderId"] == folder_id)
            ]
            data = [self.photo_json(req, p) for p in found]
        return json_response(200, self._listing_json(data))

    def _photo(self, builder_id: str, photo_id: str) -> dict[str, Any]:
        with self.lock:
            photo = self.photos.get(photo_id)
        if photo is None or photo["builderId"] != builder_id:
            raise HttpError(self.error(404, f"photo {photo_id!r} not found", "not_found"))
        return photo

    def get_photo(self, req: Request, builder_id: str, photo_id: str) -> Response:
        self._authorize(req, builder_id, "read:photos")
        return json_response(200, self.photo_json(req, self._photo(builder_id, photo_id)))

    def patch_photo(self, req: Request, builder_id: str, photo_id: str) -> Response:
        self._authorize(req, builder_id, "write:photos")
        photo = self._photo(builder_id, photo_id)
        body = self._json_object(req)
        changes: dict[str, Any] = {}
        if "fileName" in body:
            problem = bad_file_name(body["fileName"])
            if problem:
                return self.error(400, problem, "invalid_request")
            changes["fileName"] = body["fileName"]
        if "description" in body:
            if body["description"] is not None and not isinstance(body["description"], str):
                return self.error(400, "description must be a string", "invalid_request")
            changes["description"] = body["description"]
        if "capturedAt" in body:
            captured = parse_datetime(body["capturedAt"]) if body["capturedAt"] is not None else None
            if body["capturedAt"] is not None and captured is None:
                return self.error(400, "capturedAt must be an ISO 8601 date-time with a time zone", "invalid_request")
            changes["capturedAt"] = iso_z(captured) if captured is not None else None
        if "folderId" in body:
            if (
                body["folderId"] is not None
                and self._folder_of(builder_id, photo["projectId"], body["folderId"]) is None
            ):
                return self.error(
                    400, f"folderId {body['folderId']!r} is not a folder of this project", "invalid_request"
                )
            changes["folderId"] = body["folderId"]
        with self.lock:
            photo.update(changes)
            photo["updatedAt"] = iso_z(self.now())
        return json_response(200, self.photo_json(req, photo))

    # -- folders -----------------------------------------------------------------------------

    def _folder(self, builder_id: str, folder_id: str) -> dict[str, Any]:
        with self.lock:
            folder = self.folders.get(folder_id)
        if folder is None or folder["builderId"] != builder_id:
            raise HttpError(self.error(404, f"folder {folder_id!r} not found", "not_found"))
        return folder

    def list_folders(self, req: Request, builder_id: str) -> Response:
        self._authorize(req, builder_id, "read:photos")
        project_id = req.arg("projectId")
        if project_id is not None and not self._project_exists(builder_id, project_id):
            return self.error(404, f"project {project_id!r} not found", "not_found")
        with self.lock:
            data = [
                dict(f)
                for f in self.folders.values()
                if f["builderId"] == builder_id and (project_id is None or f["projectId"] == project_id)
            ]
        return json_response(200, {"data": data})

    def create_folder(self, req: Request, builder_id: str) -> Response:
        self._authorize(req, builder_id, "write:photos")
        body = self._json_object(req)
        name, project_id = body.get("name"), body.get("projectId")
        if not isinstance(name, str) or not name.strip():
            return self.error(400, "name is required", "invalid_request")
        if not isinstance(project_id, str) or not project_id:
            return self.error(400, "projectId is required", "invalid_request")
        if not self._project_exists(builder_id, project_id):
            return self.error(404, f"project {project_id!r} not found", "not_found")
        return json_response(201, dict(self._make_folder(builder_id, project_id, name.strip())))

    def get_folder(self, req: Request, builder_id: str, folder_id: str) -> Response:
        self._authorize(req, builder_id, "read:photos")
        return json_response(200, dict(self._folder(builder_id, folder_id)))

    def patch_folder(self, req: Request, builder_id: str, folder_id: str) -> Response:
        self._authorize(req, builder_id, "write:photos")
        folder = self._folder(builder_id, folder_id)
        body = self._json_object(req)
        name = body.get("name")
        if "name" in body and (not isinstance(name, str) or not name.strip()):
            return self.error(400, "name must be a non-empty string", "invalid_request")
        with self.lock:
            if isinstance(name, str):
                folder["name"] = name.strip()
            folder["updatedAt"] = iso_z(self.now())
            return json_response(200, dict(folder))

    def delete_folder(self, req: Request, builder_id: str, folder_id: str) -> Response:
        self._authorize(req, builder_id, "write:photos")
        self._folder(builder_id, folder_id)
        with self.lock:
            if any(p["folderId"] == folder_id and p["archivedAt"] is None for p in self.photos.values()):
                return self.error(409, "the folder is not empty", "conflict")
            self.folders.pop(folder_id, None)
        return empty_response(204)
