"""Server plumbing shared by the emulators: routing, bodies, responses, faults, stats, admin.

Each emulator is an :class:`App` (state plus routes) served by a ``ThreadingHTTPServer``
speaking HTTP/1.1 with keep-alive. Request bodies are read through :class:`BodyReader`
(Content-Length or chunked), never whole unless a handler asks for JSON or a form.
"""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import random
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

VERBOSE = os.environ.get("SANDBOX_VERBOSE") == "1"

FAULT_KINDS = ("error5xx", "rate_limit", "reset", "truncate", "lost_response")
MAX_JSON_BODY = 32 * 1024 * 1024
DRAIN_LIMIT = 4 * 1024 * 1024 * 1024  # bodies left unread by a handler are discarded up to this


def log(message: str) -> None:
    if VERBOSE:
        sys.stderr.write(message.rstrip("\n") + "\n")


# -- request ---------------------------------------------------------------------------------


class BodyError(Exception):
    """The request body is malformed or ended early."""


class BodyReader:
    """A request body read incrementally: Content-Length or chunked transfer coding."""

    def __init__(self, rfile: Any, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._chunked = chunked
        self._left = length or 0  # bytes left in the body (or in the current chunk)
        self._done = not chunked and not length
        self.consumed = 0

    @property
    def done(self) -> bool:
        return self._done

    def _next_chunk(self) -> None:
        line = self._rfile.readline(1024)
        if not line:
            raise BodyError("body ended inside a chunk header")
        size_text = line.split(b";", 1)[0].strip()
        try:
            self._left = int(size_text, 16)
        except ValueError:
            raise BodyError(f"bad chunk size {size_text[:20]!r}") from None
        if self._left == 0:
            while True:  # trailers up to the empty line
                trailer = self._rfile.readline(8192)
                if not trailer or trailer in (b"\r\n", b"\n"):
                    break
            self._done = True

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (everything left when n < 0); b"" at the end of the body."""
        if n < 0:
            return b"".join(iter(lambda: self.read(1 << 20), b""))
        out = bytearray()
        while len(out) < n and not self._done:
            if self._left == 0:
                if not self._chunked:
                    self._done = True
                    break
                self._next_chunk()
                continue
            data = self._rfile.read(min(n - len(out), self._left))
            if not data:
                raise BodyError("the client closed the connection before the end of the body")
            out += data
            self._left -= len(data)
            self.consumed += len(data)
            if self._left == 0:
                if self._chunked:
                    self._rfile.readline(8)  # CRLF after the chunk data
                else:
                    self._done = True
        return bytes(out)

    def drain(self, limit: int = DRAIN_LIMIT) -> bool:
        """Discard what is left; False when the body could not be read to its end."""
        try:
            while not self._done:
                if self.consumed > limit:
                    return False
                if not self.read(1 << 20) and not self._done:
                    return False
        except (BodyError, OSError, ValueError):
            return False
        return True


class HttpError(Exception):
    """Raised by handlers to answer with ``response``."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


@dataclass
class Request:
    method: str
    path: str
    raw_path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message: case-insensitive
    client_ip: str
    body: BodyReader
    app: App
    route: str | None = None
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value.strip() if isinstance(value, str) else None

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def base_url(self) -> str:
        """The origin the client used (its Host header), else the server's own URL."""
        host = self.header("Host")
        if host and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
            return f"http://{host}"
        return self.app.base_url

    def read_text(self, limit: int = MAX_JSON_BODY) -> bytes:
        data = self.body.read(limit + 1)
        if len(data) > limit:
            raise HttpError(self.app.error(413, "request body too large"))
        return data

    def json(self, *, required: bool = False) -> Any:
        try:
            data = self.read_text()
        except BodyError as exc:
            raise HttpError(self.app.error(400, f"unreadable body: {exc}")) from None
        if not data.strip():
            if required:
                raise HttpError(self.app.error(400, "a JSON body is required"))
            return None
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise HttpError(self.app.error(400, "the body is not valid JSON")) from None

    def form(self) -> dict[str, str]:
        try:
            data = self.read_text(1024 * 1024)
        except BodyError as exc:
            raise HttpError(self.app.error(400, f"unreadable body: {exc}")) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(self.app.error(400, "the form body is not UTF-8")) from None
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.header("Authorization") or ""
        if not value.lower().startswith("basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return unquote(user), unquote(password)

    def bearer(self) -> str | None:
        value = self.header("Authorization") or ""
        if value[:7].lower() != "bearer ":
            return None
        return value[7:].strip() or None


# -- response --------------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: Callable[[int | None], Iterable[bytes]] | None = None  # (limit) -> chunks
    length: int | None = None  # announced Content-Length of a stream
    stop_after: int | None = None  # streamed: close the connection after this many bytes
    bandwidth: float = 0  # bytes/s for streams, 0 = unlimited

    @property
    def content_length(self) -> int:
        return self.length if self.stream is not None and self.length is not None else len(self.body)


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), "application/json", list(headers or []))


def empty_response(status: int = 204) -> Response:
    return Response(status, b"", None)


# -- faults ----------------------------------------------------------------------------------

DEFAULT_FAULTS: dict[str, Any] = {
    "seed": None,
    "rates": {},
    "routes": None,
    "script": [],
    "retry_after": 1,
    "access_token_ttl": None,
    "signed_url_ttl": None,
    "latency_ms": 0,
    "download_bandwidth": 0,
    "cursor_ttl": 0,
}


def _number(value: Any, name: str, *, minimum: float = 0, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ValueError(f"{name} must be a number >= {minimum}")
    return value


def normalize_faults(raw: Any, route_names: set[str]) -> dict[str, Any]:
    """A full fault config from a client's partial one. :raises ValueError: naming the field"""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError("the fault config must be a JSON object")
    unknown = set(raw) - set(DEFAULT_FAULTS)
    if unknown:
        raise ValueError(f"unknown fault settings: {sorted(unknown)}")
    config = json.loads(json.dumps(DEFAULT_FAULTS))
    config.update(raw)
    if config["seed"] is not None and (isinstance(config["seed"], bool) or not isinstance(config["seed"], int)):
        raise ValueError("seed must be an integer")
    rates = config["rates"] or {}
    if not isinstance(rates, dict):
        raise ValueError("rates must be an object")
    for kind, rate in rates.items():
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r} in rates (known: {', '.join(FAULT_KINDS)})")
        _number(rate, f"rates.{kind}")
    if sum(rates.values()) > 1:
        raise ValueError("fault rates add up to more than 1")
    config["rates"] = rates
    routes = config["routes"]
    if routes is not None:
        if not isinstance(routes, list) or not all(isinstance(r, str) for r in routes):
            raise ValueError("routes must be a list of route names")
        bad = [r for r in routes if r not in route_names]
        if bad:
            raise ValueError(f"unknown routes {bad} (known: {', '.join(sorted(route_names))})")
    script = config["script"] or []
    if not isinstance(script, list):
        raise ValueError("script must be a list")
    normalized = []
    for i, entry in enumerate(script):
        if not isinstance(entry, dict):
            raise ValueError(f"script[{i}] must be an object")
        extra = set(entry) - {"route", "fault", "times", "skip", "status"}
        if extra:
            raise ValueError(f"script[{i}]: unknown keys {sorted(extra)}")
        route = entry.get("route", "*")
        if route != "*" and route not in route_names:
            raise ValueError(f"script[{i}]: unknown route {route!r} (known: {', '.join(sorted(route_names))})")
        if entry.get("fault") not in FAULT_KINDS:
            raise ValueError(f"script[{i}]: fault must be one of {', '.join(FAULT_KINDS)}")
        times = _number(entry.get("times", 1), f"script[{i}].times")
        skip = _number(entry.get("skip", 0), f"script[{i}].skip")
        status = entry.get("status")
        if status is not None and status not in (500, 502, 503, 504):
            raise ValueError(f"script[{i}]: status must be 500, 502, 503 or 504")
        normalized.append(
            {"route": route, "fault": entry["fault"], "times": int(times), "skip": int(skip), "status": status}
        )
    config["script"] = normalized
    for name in ("retry_after", "latency_ms", "download_bandwidth", "cursor_ttl"):
        _number(config[name], name)
    for name in ("access_token_ttl", "signed_url_ttl"):
        _number(config[name], name, minimum=1, allow_none=True)
    return config


def normalize_answers(raw: Any, current: dict[str, str], choices: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """The answers after a client's ``POST /_admin/answers``: ``current`` updated by ``raw``.

    ``{"preset": "worst"}`` (or ``"default"``) sets every answer first; named answers then
    override it. The first choice of each answer is today's behaviour, the last its worst.

    :raises ValueError: naming the answer or value
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError("the answers must be a JSON object")
    answers = dict(current)
    preset = raw.get("preset")
    if preset is not None:
        if preset not in ("default", "worst"):
            raise ValueError("preset must be 'default' or 'worst'")
        answers = {name: values[0 if preset == "default" else -1] for name, values in choices.items()}
    for name, value in raw.items():
        if name == "preset":
            continue
        if name not in choices:
            raise ValueError(f"unknown answer {name!r} (known: {', '.join(sorted(choices)) or 'none'})")
        if value not in choices[name]:
            raise ValueError(f"answer {name} must be one of {', '.join(choices[name])}")
        answers[name] = value
    return answers


@dataclass
class Fault:
    kind: str
    status: int | None = None


# -- rate limiting ---------------------------------------------------------------------------


class RateLimiter:
    """A fixed window per client IP, opened by its first request (real time, not the app clock)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._windows: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self.window > 0

    def hit(self, ip: str) -> tuple[bool, list[tuple[str, str]], float]:
        """(allowed, X-RateLimit headers, seconds until the window resets)"""
        now = time.time()
        with self._lock:
            window = self._windows.get(ip)
            if window is None or now >= window[0] + self.window:
                window = self._windows[ip] = [now, 0]
            allowed = window[1] < self.limit
            if allowed:
                window[1] += 1
            remaining = max(self.limit - int(window[1]), 0)
            reset_at = window[0] + self.window
        headers = [
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(remaining)),
            ("X-RateLimit-Reset", str(math.ceil(reset_at))),
        ]
        return allowed, headers, max(reset_at - now, 0.0)


# -- routing ---------------------------------------------------------------------------------


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    handler: Callable[..., Response]
    read: bool = False  # an idempotent read: a truncate fault still processes it


Handler = Callable[..., Response]


class App:
    """One emulator: state, routes, admin API, faults, stats and the clock."""

    name = "app"
    # Rate limiting defaults: (limit, window seconds); 0 = off.
    default_rate_limit: tuple[int, float] = (0, 0)
    # Named answers to undocumented points (``/_admin/answers``): name -> its values,
    # the first today's behaviour (the default), the last the worst plausible one.
    answer_choices: dict[str, tuple[str, ...]] = {}

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.base_url = "http://127.0.0.1"
        self.routes: list[Route] = []
        self.admin_routes: list[Route] = []
        self.meta_lock = threading.Lock()
        self.lock = threading.RLock()
        self._add_common_admin()
        self.setup_routes()
        self.reset()

    # -- to override ---------------------------------------------------------------------

    def setup_routes(self) -> None:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        return json_response(status, {"error": {"message": message, "code": code}})

    def rate_limited(self, headers: list[tuple[str, str]], wait: float) -> Response:
        return self.error(429, "Rate limit exceeded. Please try again later.")

    def server_error(self, status: int) -> Response:
        return self.error(status, {500: "Internal server error", 502: "Bad gateway"}.get(status, "Service unavailable"))

    # -- common state --------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            with self.meta_lock:
                self.clock_offset = 0.0
                self.faults = normalize_faults({}, self.route_names())
                self.fault_rng = random.Random(f"{self.seed}:{self.name}:faults")
                self.stats: dict[str, int] = {}
                self.events: dict[str, int] = {}
                self.total = 0
                self.answers = normalize_answers({"preset": "default"}, {}, self.answer_choices)
                self._secrets: dict[str, None] = {}
                limit, window = self.default_rate_limit
                self.limiter = RateLimiter(limit, window)
                self.id_rng = random.Random(f"{self.seed}:{self.name}:ids")
            self.reset_state()

    def now(self) -> float:
        """The app clock: real time plus the offset set with ``POST /_admin/clock``."""
        return time.time() + self.clock_offset

    def remember_secret(self, *values: str) -> None:
        with self.meta_lock:
            for value in values:
                if value:
                    self._secrets[value] = None

    def secrets(self) -> list[str]:
        with self.meta_lock:
            return list(self._secrets)

    def route_names(self) -> set[str]:
        return {r.name for r in self.routes}

    def fault_setting(self, name: str) -> Any:
        with self.meta_lock:
            return self.faults[name]

    def new_id(self, prefix: str = "", length: int = 24) -> str:
        alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
        with self.meta_lock:
            return prefix + "".join(self.id_rng.choice(alphabet) for _ in range(length))

    def new_uuid(self) -> str:
        import uuid

        with self.meta_lock:
            return str(uuid.UUID(int=self.id_rng.getrandbits(128), version=4))

    # -- routing -------------------------------------------------------------------------

    def route(self, method: str, pattern: str, name: str, handler: Handler, *, read: bool = False) -> None:
        self.routes.append(Route(method, re.compile(pattern + r"\Z"), name, handler, read))

    def admin(self, method: str, pattern: str, handler: Handler) -> None:
        self.admin_routes.append(Route(method, re.compile(r"/_admin" + pattern + r"\Z"), "_admin", handler))

    def _match(self, routes: list[Route], method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        path_known = False
        for route in routes:
            m = route.pattern.match(path)
            if not m:
                continue
            path_known = True
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return route, m.groupdict(), True
        return None, {}, path_known

    # -- faults and stats ----------------------------------------------------------------

    def set_faults(self, raw: Any) -> dict[str, Any]:
        config = normalize_faults(raw, self.route_names())
        with self.meta_lock:
            self.faults = config
            seed = config["seed"] if config["seed"] is not None else self.seed
            self.fault_rng = random.Random(f"{seed}:{self.name}:faults")
            return json.loads(json.dumps(config))

    def pick_fault(self, route: str) -> Fault | None:
        with self.meta_lock:
            for entry in self.faults["script"]:
                if entry["times"] <= 0 or entry["route"] not in ("*", route):
                    continue
                if entry["skip"] > 0:
                    entry["skip"] -= 1
                    continue
                entry["times"] -= 1
                return Fault(entry["fault"], entry["status"])
            rates = self.faults["rates"]
            routes = self.faults["routes"]
            if not rates or (routes is not None and route not in routes):
                return None
            x = self.fault_rng.random()
            total = 0.0
            for kind in FAULT_KINDS:
                total += rates.get(kind, 0)
                if x < total:
                    status = self.fault_rng.choice((500, 502, 503)) if kind == "error5xx" else None
                    return Fault(kind, status)
        return None

    def count(self, route: str) -> None:
        with self.meta_lock:
            self.stats[route] = self.stats.get(route, 0) + 1
            self.total += 1

    def count_event(self, name: str) -> None:
        """Count something a test may check in ``/_admin/stats`` (e.g. a refused expired URL)."""
        with self.meta_lock:
            self.events[name] = self.events.get(name, 0) + 1

    def answer(self, name: str) -> str:
        """The current answer to the undocumented point ``name``."""
        with self.meta_lock:
            return self.answers[name]

    def set_answers(self, raw: Any) -> dict[str, str]:
        with self.meta_lock:
            self.answers = normalize_answers(raw, self.answers, self.answer_choices)
            return dict(self.answers)

    # -- admin ---------------------------------------------------------------------------

    def _add_common_admin(self) -> None:
        self.admin("POST", r"/reset", lambda req: self._admin_reset(req))
        self.admin("GET", r"/faults", lambda req: json_response(200, self.fault_config()))
        self.admin("POST", r"/faults", self._admin_faults)
        self.admin("GET", r"/stats", lambda req: json_response(200, self.stats_payload()))
        self.admin("POST", r"/stats/reset", self._admin_stats_reset)
        self.admin("GET", r"/secrets", lambda req: json_response(200, self.secrets()))
        self.admin("GET", r"/clock", lambda req: json_response(200, self.clock_payload()))
        self.admin("POST", r"/clock", self._admin_clock)
        self.admin("GET", r"/rate-limit", lambda req: json_response(200, self.rate_limit_payload()))
        self.admin("POST", r"/rate-limit", self._admin_rate_limit)
        self.admin("GET", r"/answers", lambda req: json_response(200, self.answers_payload()))
        self.admin("POST", r"/answers", self._admin_answers)

    def answers_payload(self) -> dict[str, str]:
        with self.meta_lock:
            return dict(self.answers)

    def _admin_answers(self, req: Request) -> Response:
        try:
            return json_response(200, self.set_answers(admin_json(req)))
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})

    def _admin_reset(self, req: Request) -> Response:
        self.reset()
        return json_response(200, {"ok": True})

    def fault_config(self) -> dict[str, Any]:
        with self.meta_lock:
            return json.loads(json.dumps(self.faults))

    def _admin_faults(self, req: Request) -> Response:
        try:
            return json_response(200, self.set_faults(admin_json(req)))
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})

    def stats_payload(self) -> dict[str, Any]:
        with self.meta_lock:
            return {"requests": dict(self.stats), "total": self.total, "events": dict(self.events)}

    def _admin_stats_reset(self, req: Request) -> Response:
        with self.meta_lock:
            self.stats = {}
            self.events = {}
            self.total = 0
        return json_response(200, {"requests": {}, "total": 0, "events": {}})

    def clock_payload(self) -> dict[str, Any]:
        return {"now": self.now(), "offset_seconds": self.clock_offset}

    def _admin_clock(self, req: Request) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict):
            return json_response(400, {"error": 'expected {"offset_seconds": N} or {"advance_seconds": N}'})
        try:
            if "offset_seconds" in body:
                self.clock_offset = float(_number(body["offset_seconds"], "offset_seconds", minimum=-1e12))
            if "advance_seconds" in body:
                self.clock_offset += float(_number(body["advance_seconds"], "advance_seconds", minimum=-1e12))
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, self.clock_payload())

    def rate_limit_payload(self) -> dict[str, Any]:
        return {"limit": self.limiter.limit, "window_seconds": self.limiter.window}

    def _admin_rate_limit(self, req: Request) -> Response:
        body = admin_json(req)
        if not isinstance(body, dict):
            return json_response(400, {"error": 'expected {"limit": N, "window_seconds": S}'})
        try:
            limit = int(_number(body.get("limit", self.limiter.limit), "limit"))
            window = float(_number(body.get("window_seconds", self.limiter.window), "window_seconds"))
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        self.limiter = RateLimiter(limit, window)
        return json_response(200, self.rate_limit_payload())

    # -- dispatch ------------------------------------------------------------------------

    def handle(self, h: RequestHandler) -> None:
        """Serve one request on handler ``h`` (whatever happens, never raises)."""
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        te = (h.headers.get("Transfer-Encoding") or "").lower()
        length_text = h.headers.get("Content-Length")
        try:
            length = int(length_text) if length_text else None
            if length is not None and length < 0:
                raise ValueError
        except ValueError:
            h.close_connection = True
            h.write(self.error(400, "bad Content-Length"))
            return
        body = BodyReader(h.rfile, length, "chunked" in te)
        req = Request(
            method=h.command,
            path=path,
            raw_path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=h.headers,
            client_ip=h.client_address[0] if h.client_address else "?",
            body=body,
            app=self,
        )
        try:
            self._dispatch(h, req)
        except (ConnectionError, TimeoutError, BrokenPipeError):
            h.close_connection = True
        except Exception:  # a bug in an emulator: answer 500 and say so on stderr
            h.close_connection = True
            sys.stderr.write(f"sandbox {self.name}: error serving {req.method} {req.path}\n{traceback.format_exc()}")
            if not h.started:
                with contextlib.suppress(OSError):
                    h.write(self.error(500, "emulator bug (see its stderr)"))

    def _finish_body(self, h: RequestHandler, req: Request) -> None:
        if not req.body.drain():
            h.close_connection = True

    def _dispatch(self, h: RequestHandler, req: Request) -> None:
        if req.path.startswith("/_admin/") or req.path == "/_admin":
            route, params, known = self._match(self.admin_routes, req.method, req.path)
            if route is None:
                self._finish_body(h, req)
                h.write(json_response(405 if known else 404, {"error": f"no admin route {req.method} {req.path}"}))
                return
            req.route = "_admin"
            try:
                response = route.handler(req, **params)
            except HttpError as exc:
                response = exc.response
            self._finish_body(h, req)
            h.write(response)
            return

        route, params, known = self._match(self.routes, req.method, req.path)
        req.route = route.name if route else "unmatched"
        req.params = params
        self.count(req.route)
        extra: list[tuple[str, str]] = []
        if self.limiter.enabled:
            allowed, extra, wait = self.limiter.hit(req.client_ip)
            if not allowed:
                self.count_event("rate_limited")  # a 429 of the limit itself (not a scripted fault)
                self._finish_body(h, req)
                response = self.rate_limited(extra, wait)
                h.write(response, extra=self.limit_headers(extra))
                return
        extra = self.limit_headers(extra)
        if route is None:
            self._finish_body(h, req)
            h.write(self.error(405 if known else 404, f"no route {req.method} {req.path}"), extra=extra)
            return
        latency = self.fault_setting("latency_ms")
        if latency:
            time.sleep(latency / 1000.0)
        fault = self.pick_fault(route.name)
        if fault is not None:
            log(f"sandbox {self.name}: fault {fault.kind} on {route.name}")
        kind = fault.kind if fault else None
        if kind == "reset":
            h.abort(rst=True)
            return
        if kind == "error5xx":
            self._finish_body(h, req)
            h.write(self.server_error(fault.status or 500), extra=extra)  # type: ignore[union-attr]
            return
        if kind == "rate_limit":
            self._finish_body(h, req)
            wait = float(self.fault_setting("retry_after"))
            h.write(self.rate_limited(extra, wait), extra=self.fault_limit_headers(extra, wait))
            return
        if kind == "truncate" and not route.read:
            self._finish_body(h, req)
            pad = json.dumps({"id": "truncated", "padding": "x" * 200}).encode()
            h.write(Response(200, pad), extra=extra, truncate=True)
            return
        try:
            response = route.handler(req, **params)
        except HttpError as exc:
            response = exc.response
        self._finish_body(h, req)
        if kind == "lost_response":
            h.abort(rst=False)
            return
        h.write(response, extra=extra, truncate=kind == "truncate")

    def limit_headers(self, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Rate-limit headers sent on every response (none by default)."""
        return []

    def fault_limit_headers(self, headers: list[tuple[str, str]], wait: float) -> list[tuple[str, str]]:
        """Headers of a 429 produced by the rate_limit fault."""
        return []


def admin_json(req: Request) -> Any:
    try:
        return req.json()
    except HttpError:
        return None


# -- server ----------------------------------------------------------------------------------


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sandbox"
    sys_version = ""
    timeout = 120  # idle keep-alive connections and stalled bodies
    started = False

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        # small answers go out at once instead of waiting on the client's delayed ACK
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_any(self) -> None:
        self.started = False
        self.server.app.handle(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_any

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ValueError):
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        if VERBOSE:
            super().log_message(format, *args)

    def log_error(self, format: str, *args: Any) -> None:
        if VERBOSE:
            super().log_message(format, *args)

    # -- writing ---------------------------------------------------------------------------

    def write(self, response: Response, *, extra: list[tuple[str, str]] | None = None, truncate: bool = False) -> None:
        """Send ``response``; ``truncate`` announces the whole body, sends half and closes."""
        self.started = True
        length = response.content_length
        stop = response.stop_after
        if truncate:
            stop = length // 2 if length > 1 else 0
            if length == 0:
                length = 1  # promise a byte that never comes
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(length))
        for name, value in [*response.headers, *(extra or [])]:
            self.send_header(name, value)
        if self.close_connection or stop is not None:
            self.send_header("Connection", "close")
        if self.command == "HEAD" or response.status in (204, 304):
            self.end_headers()
            return
        if response.stream is None:
            # headers and body in one write
            buffer = self._headers_buffer  # type: ignore[attr-defined]
            buffer.append(b"\r\n")
            buffer.append(response.body if stop is None else response.body[:stop])
            self.flush_headers()
        else:
            self.end_headers()
            self._stream(response.stream(stop), response.bandwidth)
        if stop is not None:
            self.abort(rst=False)

    def _stream(self, chunks: Iterable[bytes], bandwidth: float) -> None:
        start = time.monotonic()
        sent = 0
        for chunk in chunks:
            if bandwidth > 0:
                # pace in slices so a slow link looks slow, not bursty
                for i in range(0, len(chunk), 16384):
                    piece = chunk[i : i + 16384]
                    ahead = (sent + len(piece)) / bandwidth - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
                    self.wfile.write(piece)
                    sent += len(piece)
            else:
                self.wfile.write(chunk)
                sent += len(chunk)

    def abort(self, *, rst: bool) -> None:
        """Drop the connection without (the rest of) a response: RST, or FIN when ``rst`` is False."""
        self.close_connection = True
        self.started = True
        sock = self.connection
        try:
            if rst:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            else:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, app: App, port: int, host: str = "127.0.0.1") -> None:
        self.app = app
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__((host, port), RequestHandler)
        shown = "127.0.0.1" if host in ("", "0.0.0.0") else host
        app.base_url = f"http://{shown}:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return self.app.base_url

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)) and not VERBOSE:
            return
        super().handle_error(request, client_address)

    def close_all(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class Serving:
    """A server running in a daemon thread."""

    def __init__(self, app: App, port: int = 0, host: str = "127.0.0.1") -> None:
        self.server = Server(app, port, host)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.2}, name=f"sandbox-{app.name}", daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.close_all()
        self.server.server_close()
        self.thread.join(timeout=5)


def iso_z(epoch: float, *, millis: bool = True) -> str:
    t = time.gmtime(epoch)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", t)
    if millis:
        text += f".{int((epoch % 1) * 1000) % 1000:03d}"
    return text + "Z"


def chunks_of(data: bytes, size: int = 65536) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]
