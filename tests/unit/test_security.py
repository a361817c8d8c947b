"""Credentials go only where they belong; TLS stays on; object keys come from validated ids only.

The "APIs" here are tiny recording HTTP servers on 127.0.0.1 and the "foreign host" one on
127.0.0.2 (another host name on the loopback network), so every header and body that reached
each of them can be inspected.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from acc_buildpass.clients import http
from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.clients.retry import RetryPolicy, is_retryable
from acc_buildpass.clients.tokens import FileTokenStore
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import (
    ApiError,
    AuthError,
    BadRequest,
    Gone,
    RateLimited,
    ServerError,
    SignedUrlExpired,
    TransportError,
)
from acc_buildpass.models import Window
from acc_buildpass.storage import Layout

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
FOREIGN_HOST = "127.0.0.2"
ACC_ACCESS = "eyJ-acc-access-token-secret"
ACC_REFRESH = "acc-refresh-token-secret"
ACC_SECRET = "acc-client-secret-value"
BP_ACCESS = "bp-access-token-secret"
BP_SECRET = "bp-client-secret-value"
NETRC_USER, NETRC_PASSWORD = "netrc-user", "netrc-password-secret"
SIGNATURE = "X-Amz-Signature=0123456789abcdef"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"
PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
FILTER = f"/construction/photos/v1/projects/{PROJECT}/photos:filter"
NO_RETRY = RetryPolicy(attempts=1)

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Recorder:
    """An HTTP server that records every request and answers through ``respond``."""

    host: str
    respond: Callable[[Seen], Reply] = field(default=lambda seen: (200, {}, b"{}"))
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                recorder.requests.append(seen)
                status, headers, payload = recorder.respond(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def authorizations(self) -> list[str]:
        return [r.headers["authorization"] for r in self.requests if "authorization" in r.headers]


def _json(status: int, payload: Any, **headers: str) -> Reply:
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


def _acc_token(seen: Seen) -> Reply | None:
    if seen.path == "/authentication/v2/token":
        return _json(
            200,
            {"access_token": ACC_ACCESS, "token_type": "Bearer", "expires_in": 3600, "refresh_token": ACC_REFRESH},
        )
    return None


def _bp_token(seen: Seen) -> Reply | None:
    if seen.path == "/oauth/token":
        return _json(200, {"access_token": BP_ACCESS, "token_type": "Bearer", "expires_in": 3600})
    return None


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Recorder, Recorder, Recorder]]:
    """(api on 127.0.0.1, foreign host on 127.0.0.2, another port on 127.0.0.1).

    A .netrc (``NETRC``) naming both hosts is in place: a session that trusted the environment would
    send those credentials along.
    """
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "".join(f"machine {h} login {NETRC_USER} password {NETRC_PASSWORD}\n" for h in ("127.0.0.1", FOREIGN_HOST))
    )
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    started = [Recorder("127.0.0.1"), Recorder(FOREIGN_HOST), Recorder("127.0.0.1")]
    yield started[0], started[1], started[2]
    for recorder in started:
        recorder.stop()
    netrc_basic = base64.b64encode(f"{NETRC_USER}:{NETRC_PASSWORD}".encode()).decode()
    for recorder in started:
        assert not any(netrc_basic in a for a in recorder.authorizations()), "credentials from .netrc were sent"


def acc_client(api: Recorder, tmp_path: Path) -> AccClient:
    store = FileTokenStore(tmp_path / "store", key="test")
    return AccClient(api.url, "acc-client", ACC_SECRET, "seed-refresh-token", store, policy=NO_RETRY)


def bp_client(api: Recorder) -> BuildPassClient:
    return BuildPassClient(api.url, "bp-client", BP_SECRET, policy=NO_RETRY)


def _secrets_in(seen: Seen) -> list[str]:
    text = json.dumps(seen.headers) + seen.body.decode(errors="replace")
    found = [s for s in (ACC_ACCESS, ACC_REFRESH, ACC_SECRET, BP_ACCESS, BP_SECRET, "seed-refresh-token") if s in text]
    if "authorization" in seen.headers:
        found.append("Authorization header")
    return found


# -- (a) the bearer token stays with its API -------------------------------------------------


def test_download_never_sends_the_bearer(servers: tuple[Recorder, Recorder, Recorder], tmp_path: Path) -> None:
    api, foreign, _ = servers

    def api_respond(seen: Seen) -> Reply:
        if token := _acc_token(seen):
            return token
        if seen.path.startswith("/oss/"):
            return 200, {"Content-Type": "image/jpeg"}, JPEG
        return _json(200, {"pagination": {"limit": 1, "offset": 0}, "results": []})

    api.respond = api_respond
    foreign.respond = lambda seen: (200, {"Content-Type": "image/jpeg"}, JPEG)
    client = acc_client(api, tmp_path)
    client.check_project(PROJECT)
    # The client does hold a bearer token, and the API got it.
    assert f"Bearer {ACC_ACCESS}" in api.authorizations()

    for url in (f"{foreign.url}/bucket/object?{SIGNATURE}", f"{api.url}/oss/object?{SIGNATURE}"):
        sink = io.BytesIO()
        assert client.download(url, sink) == len(JPEG)
        assert sink.getvalue() == JPEG
    assert [r.method for r in foreign.requests] == ["GET"]
    assert _secrets_in(foreign.requests[0]) == []
    # Not even on the API's own host: a signed URL carries its own credentials (S3 refuses two).
    oss = [r for r in api.requests if r.path.startswith("/oss/")]
    assert len(oss) == 1 and "authorization" not in oss[0].headers


def _refused(call: Callable[[], object]) -> ApiError:
    """The call fails at once with a final error (a redirect is not worth retrying)."""
    with pytest.raises(ApiError) as info:
        call()
    assert not is_retryable(info.value), info.value
    assert "not followed" in str(info.value)
    return info.value


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_an_acc_redirect_to_another_host_gets_no_credentials(
    servers: tuple[Recorder, Recorder, Recorder], tmp_path: Path, status: int
) -> None:
    api, foreign, _ = servers
    foreign.respond = lambda seen: _acc_token(seen) or _json(200, {"results": []})

    # The token endpoint itself redirects: neither the refresh token (form body) nor the
    # client secret (HTTP Basic) may follow it to the other host.
    api.respond = lambda seen: _json(status, {}, Location=f"{foreign.url}{seen.path}?{SIGNATURE}")
    error = _refused(lambda: acc_client(api, tmp_path).check_project(PROJECT))
    assert "X-Amz-Signature" not in str(error)
    assert [r.path for r in api.requests] == ["/authentication/v2/token"]

    # Signed in, then the API call redirects: the bearer (and the request body) stay home.
    api.respond = lambda seen: _acc_token(seen) or _json(status, {}, Location=f"{foreign.url}{seen.path}")
    _refused(lambda: acc_client(api, tmp_path / "second").check_project(PROJECT))
    assert f"Bearer {ACC_ACCESS}" in api.authorizations()
    assert foreign.requests == []


@pytest.mark.parametrize("status", [302, 303, 307, 308])
def test_a_buildpass_redirect_to_another_host_gets_no_credentials(
    servers: tuple[Recorder, Recorder, Recorder], status: int
) -> None:
    api, foreign, _ = servers
    foreign.respond = lambda seen: _bp_token(seen) or _json(200, {"id": "f1", "name": "x", "data": []})

    # The token endpoint redirects: the client secret (JSON body) must not follow.
    api.respond = lambda seen: _json(status, {}, Location=f"{foreign.url}{seen.path}")
    _refused(bp_client(api).sign_in)
    assert [r.path for r in api.requests] == ["/oauth/token"]

    # Signed in, then a write and a read redirect: neither the bearer nor the body goes along.
    api.respond = lambda seen: _bp_token(seen) or _json(status, {}, Location=f"{foreign.url}{seen.path}")
    client = bp_client(api)
    _refused(lambda: client.create_folder("buil_x", "proj_y", "Autodesk Construction Cloud"))
    _refused(lambda: client.list_photos("buil_x", "proj_y"))
    assert f"Bearer {BP_ACCESS}" in api.authorizations()
    assert foreign.requests == []


def test_a_redirect_within_the_api_host_is_followed(
    servers: tuple[Recorder, Recorder, Recorder], tmp_path: Path
) -> None:
    api, _, _ = servers

    def respond(seen: Seen) -> Reply:
        if token := _acc_token(seen):
            return token
        if seen.path == FILTER:
            return _json(307, {}, Location=f"{api.url}/moved{FILTER}")
        return _json(200, {"pagination": {"limit": 1, "offset": 0}, "results": []})

    api.respond = respond
    acc_client(api, tmp_path).check_project(PROJECT)
    moved = [r for r in api.requests if r.path == f"/moved{FILTER}"]
    assert len(moved) == 1 and moved[0].method == "POST"
    assert moved[0].headers.get("authorization") == f"Bearer {ACC_ACCESS}"


def test_a_signed_download_may_follow_storage_redirects(
    servers: tuple[Recorder, Recorder, Recorder], tmp_path: Path
) -> None:
    # S3 answers 307 for a bucket in another region: a download carries no credentials, so
    # following it to another host is safe (and needed).
    api, foreign, _ = servers
    api.respond = lambda seen: (307, {"Location": f"{foreign.url}{seen.path}"}, b"")
    foreign.respond = lambda seen: (200, {"Content-Type": "image/jpeg"}, JPEG)
    sink = io.BytesIO()
    assert acc_client(api, tmp_path).download(f"{api.url}/obj?{SIGNATURE}", sink) == len(JPEG)
    assert sink.getvalue() == JPEG
    assert [(r.method, "authorization" in r.headers) for r in foreign.requests] == [("GET", False)]


def _next_post_variants(api: Recorder, foreign: Recorder, other_port: Recorder) -> dict[str, str]:
    api_port = api.server.server_address[1]
    return {
        "another host": f"{foreign.url}{FILTER}",
        "another port": f"{other_port.url}{FILTER}",
        "another scheme": f"https://127.0.0.1:{api_port}{FILTER}",
        "userinfo disguise": f"http://127.0.0.1:{api_port}@{FOREIGN_HOST}:{foreign.server.server_address[1]}{FILTER}",
        "scheme-relative": f"//{FOREIGN_HOST}:{foreign.server.server_address[1]}{FILTER}",
    }


@pytest.mark.parametrize(
    "variant", ["another host", "another port", "another scheme", "userinfo disguise", "scheme-relative"]
)
def test_next_post_to_another_origin_is_refused(
    servers: tuple[Recorder, Recorder, Recorder], tmp_path: Path, variant: str
) -> None:
    api, foreign, other_port = servers
    next_url = _next_post_variants(api, foreign, other_port)[variant]

    def api_respond(seen: Seen) -> Reply:
        return _acc_token(seen) or _json(
            200,
            {
                "pagination": {"limit": 50, "offset": 0, "nextPost": {"url": next_url, "body": {"cursorState": "c1"}}},
                "results": [],
            },
        )

    api.respond = api_respond
    for recorder in (foreign, other_port):
        recorder.respond = lambda seen: _json(200, {"pagination": {}, "results": []})
    client = acc_client(api, tmp_path)
    with pytest.raises(ApiError, match="another host"):
        client.photos_by_id(PROJECT, ["photo-1"])
    assert foreign.requests == [] and other_port.requests == []
    assert [r.path for r in api.requests if r.path == FILTER] == [FILTER]


def test_next_post_on_the_same_origin_is_followed_with_the_bearer(
    servers: tuple[Recorder, Recorder, Recorder], tmp_path: Path
) -> None:
    api, _, _ = servers
    photo = {"id": "photo-1", "createdAt": "2024-03-01T10:00:00", "mediaType": "NORMAL", "size": 10}

    def api_respond(seen: Seen) -> Reply:
        if token := _acc_token(seen):
            return token
        if b"cursorState" in seen.body:
            return _json(200, {"pagination": {"limit": 50, "offset": 1}, "results": [photo]})
        next_post = {"url": f"{api.url}{FILTER}", "body": {"cursorState": "c1"}}
        return _json(200, {"pagination": {"limit": 50, "offset": 0, "nextPost": next_post}, "results": []})

    api.respond = api_respond
    client = acc_client(api, tmp_path)
    assert list(client.photos_by_id(PROJECT, ["photo-1"])) == ["photo-1"]
    pages = [r for r in api.requests if r.path == FILTER]
    assert len(pages) == 2
    assert all(r.headers.get("authorization") == f"Bearer {ACC_ACCESS}" for r in pages)


def test_api_calls_only_go_to_the_configured_host(servers: tuple[Recorder, Recorder, Recorder], tmp_path: Path) -> None:
    api, foreign, _ = servers
    client = acc_client(api, tmp_path)
    with pytest.raises(ApiError, match="another host"):
        client._api("GET", f"{foreign.url}/anything")
    assert foreign.requests == [] and api.requests == []


# -- (b) TLS verification ----------------------------------------------------------------------


def test_sessions_verify_tls_and_ignore_the_environment(tmp_path: Path) -> None:
    session = http.new_session()
    assert session.verify is True
    assert session.trust_env is False  # no proxies, .netrc or CA bundle overrides from the environment
    store = FileTokenStore(tmp_path, key="k")
    assert AccClient("https://acc.example", "i", "s", "r", store).session.verify is True
    assert BuildPassClient("https://bp.example", "i", "s").session.verify is True


_INSECURE = re.compile(
    r"\bverify\s*=(?!\s*True\b)"  # verify=False, verify=some_flag, session.verify = ...
    r"|CERT_NONE|check_hostname\s*=\s*False|_create_unverified_context|disable_warnings"
    r"|InsecureRequestWarning|PYTHONHTTPSVERIFY|CURL_CA_BUNDLE|REQUESTS_CA_BUNDLE"
)


def test_no_plugin_module_turns_tls_verification_off() -> None:
    sources = sorted(PLUGINS.rglob("*.py"))
    assert len(sources) > 10, sources  # the grep looked at the real package
    offenders = [
        f"{path.relative_to(PLUGINS)}:{n}: {line.strip()}"
        for path in sources
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if _INSECURE.search(line)
    ]
    assert offenders == []


def test_the_grep_would_see_verify_false() -> None:
    for line in ("requests.get(url, verify=False)", "session.verify = False", "ssl.CERT_NONE", "verify = flag"):
        assert _INSECURE.search(line), line
    assert not _INSECURE.search("session.verify = True")


# -- (c) object keys from validated ids only ---------------------------------------------------

LAYOUT = Layout(bucket="acc-buildpass-staging", prefix="acc-photos")
WINDOW = Window(datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC))
BAD_IDS = [
    "",
    "a/b",
    "/abs",
    "trailing/",
    "..",
    "../etc",
    "a..b",
    ".hidden",
    "a\\b",
    "a\nb",
    "abc\n",
    "\nabc",
    "a\x00b",
    "a\tb",
    "a\rb",
    "a\x7fb",
    "a\x1bb",
    "a b",
    "a%2Fb",
    "x" * 129,
]
GOOD = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"

KEY_BUILDERS: dict[str, Callable[[str], str]] = {
    "object_key project": lambda bad: LAYOUT.object_key(bad, GOOD),
    "object_key photo": lambda bad: LAYOUT.object_key(GOOD, bad),
    "ledger builder": lambda bad: LAYOUT.ledger(bad, "proj_y", GOOD),
    "ledger project": lambda bad: LAYOUT.ledger("buil_x", bad, GOOD),
    "ledger photo": lambda bad: LAYOUT.ledger("buil_x", "proj_y", bad),
    "manifest_part project": lambda bad: LAYOUT.manifest_part(WINDOW, bad, 0),
    "extract_summary project": lambda bad: LAYOUT.extract_summary(WINDOW, bad),
}


@pytest.mark.parametrize("builder", sorted(KEY_BUILDERS))
@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_keys_refuse_ids_that_are_not_plain(builder: str, bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid id"):
        KEY_BUILDERS[builder](bad)


def test_every_key_lives_under_the_staging_prefix() -> None:
    keys = [builder(GOOD) for builder in KEY_BUILDERS.values()]
    keys += [
        LAYOUT.window_key(WINDOW, "x.json"),
        LAYOUT.batch_outcome(WINDOW, 3, "stage"),
        LAYOUT.report(WINDOW, "md"),
        LAYOUT.manifest_part(WINDOW, GOOD, 12),
    ]
    for key in keys:
        assert key.startswith("acc-photos/"), key
        segments = key.split("/")
        assert all(s and s not in (".", "..") for s in segments), key
        assert not any(ord(c) < 32 or ord(c) == 127 for c in key), key
    assert LAYOUT.object_key(GOOD, "photo-1") == f"acc-photos/objects/{GOOD}/photo-1"
    assert LAYOUT.ledger("buil_x", "proj_y", "photo-1") == "acc-photos/ledger/buil_x/proj_y/photo-1.json"


@pytest.mark.parametrize("prefix", ["acc-photos\n", "acc\x00photos", "../up", "a/../b", "acc photos", ""])
def test_the_configured_prefix_is_validated_too(prefix: str) -> None:
    from acc_buildpass.errors import ConfigError

    raw = {
        "staging_bucket": "acc-buildpass-staging",
        "staging_prefix": prefix,
        "projects": [{"acc_project_id": GOOD, "builder_id": "buil_x", "buildpass_project_id": "proj_y"}],
    }
    with pytest.raises(ConfigError):
        PipelineConfig.from_variable(raw)
    raw["staging_prefix"] = "acc-photos/team-1"
    assert PipelineConfig.from_variable(raw).staging_prefix == "acc-photos/team-1"


# -- (d) no signed-URL credentials in error messages -------------------------------------------

SIGNED = f"https://bucket.s3.amazonaws.com/path/obj?X-Amz-Date=20240301T000000Z&{SIGNATURE}#frag"


def _rendered(exc: BaseException) -> str:
    return "\n".join([str(exc), repr(exc), *map(str, exc.args), "".join(traceback.format_exception(exc))])


@pytest.mark.parametrize(
    "error",
    [
        ApiError("failed", url=SIGNED, status=500, method="GET"),
        AuthError("refused", url=SIGNED, status=403),
        BadRequest("rejected", url=SIGNED),
        Gone("gone", url=SIGNED, status=410),
        ServerError("server error", url=SIGNED, status=503),
        SignedUrlExpired("expired", url=SIGNED, status=403),
        TransportError("reset", url=SIGNED),
        RateLimited("slow down", url=SIGNED, retry_after=1.0),
    ],
    ids=lambda e: type(e).__name__,
)
def test_error_strings_carry_no_query_string(error: ApiError) -> None:
    try:
        raise error
    except ApiError as exc:
        text = _rendered(exc)
    assert "X-Amz-Signature" not in text and "X-Amz-Date" not in text and "frag" not in text
    assert "https://bucket.s3.amazonaws.com/path/obj" in str(error)
    assert error.url == "https://bucket.s3.amazonaws.com/path/obj"


def test_failed_downloads_name_no_signature(servers: tuple[Recorder, Recorder, Recorder], tmp_path: Path) -> None:
    _, foreign, _ = servers
    client = acc_client(foreign, tmp_path)
    statuses = iter([403, 404, 410])

    def respond(seen: Seen) -> Reply:
        # Storage that echoes what it was given (S3's SignatureDoesNotMatch names the signature).
        return next(statuses), {"Content-Type": "application/xml"}, f"<Error>{seen.path}</Error>".encode()

    foreign.respond = respond
    raised: list[BaseException] = []
    for expected in (SignedUrlExpired, Gone, Gone):
        with pytest.raises(expected) as info:
            client.download(f"{foreign.url}/obj?{SIGNATURE}", io.BytesIO())
        raised.append(info.value)
    # Nothing listens on this port: the connection error must not quote the URL either.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/obj?{SIGNATURE}"
    with pytest.raises(TransportError) as info:
        client.download(closed, io.BytesIO())
    raised.append(info.value)
    for exc in raised:
        assert "X-Amz-Signature" not in _rendered(exc), _rendered(exc)
