"""HTTP plumbing shared by both API clients: one Session per client, timeouts, error mapping."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypedDict, Unpack
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from acc_buildpass import __version__
from acc_buildpass.clients.retry import RetryPolicy
from acc_buildpass.errors import (
    ApiError,
    AuthError,
    BadRequest,
    Conflict,
    Gone,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    redact_url,
)

# (connect, read) seconds. Connecting is quick or broken; a read waits for the server to
# answer a bulk request of dozens of photos, which takes seconds, never minutes.
TIMEOUT = (10.0, 120.0)

USER_AGENT = f"acc-buildpass/{__version__} python-requests/{requests.__version__}"


class _Session(requests.Session):
    """Follows a redirect to another origin only for a GET or HEAD that carries no credentials.

    requests drops the ``Authorization`` header on such a redirect, but a 307/308 replays the
    body: a token call's refresh token or client secret would go to whatever host ``Location``
    names. Refused, the redirect becomes a final error (see ``raise_for_status``).
    """

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is None or same_origin(urljoin(resp.url, target), resp.url):
            return target
        sent = resp.request
        if sent.method in ("GET", "HEAD") and "Authorization" not in sent.headers and not sent.body:
            return target
        return None


def new_session(pool_size: int = 8) -> requests.Session:
    """A Session with a connection pool large enough for our download/upload threads."""
    session = _Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    # Proxies and .netrc from the environment must not inject credentials we did not choose.
    session.trust_env = False
    return session


class ClientOptions(TypedDict, total=False):
    """What either client may be given besides its credentials.

    :param policy: how hard each call tries (default: ``RetryPolicy()``)
    :param session: a Session to use instead of a new one (tests, shared pools)
    :param on_secret: called with every token received, to register it with a log masker
    """

    policy: RetryPolicy | None
    session: requests.Session | None
    on_secret: Callable[[str], None] | None


class ApiClient:
    """What both API clients share: a checked base URL, the client credentials, one Session (its
    connection pool serves the client's threads), the retry policy and the secret masker.

    Closeable, so a task or a command that is done with a client gives its connections back:
    ``close()``, or ``with client: ...``.

    :raises ValueError: the base URL is not http(s), or plain http to a host not allowed it
    """

    default_base_url = ""  # the vendor's API, when the connection names no host
    host_name = "API host"  # how an error names the base URL

    def __init__(self, base_url: str, client_id: str, client_secret: str, **options: Unpack[ClientOptions]) -> None:
        self.base_url = check_base_url(base_url or self.default_base_url, name=self.host_name)
        self._client_id = client_id
        self._client_secret = client_secret
        self.policy = options.get("policy") or RetryPolicy()
        self.session = options.get("session") or new_session()
        self._on_secret = options.get("on_secret") or (lambda _s: None)

    def close(self) -> None:
        """Close the Session and its pooled connections (a later call opens new ones).

        :raises: nothing
        """
        self.session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def api_base_url(host: str | None, default: str) -> str:
    """A connection's host as a base URL: empty means the vendor's API, a bare host name https."""
    url = host or default
    return url if "://" in url else f"https://{url}"


INSECURE_HOSTS_ENV = "ACC_BUILDPASS_INSECURE_HTTP_HOSTS"


def insecure_hosts() -> set[str]:
    """Host names the operator allowed over plain http (e.g. the emulators in docker compose)."""
    return {h.strip() for h in os.environ.get(INSECURE_HOSTS_ENV, "").split(",") if h.strip()}


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, name: str) -> str:
    """TLS is required for every host but loopback (where our emulators live)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name}: {url!r} is not an http(s) URL")
    if parts.scheme == "http" and not is_loopback(url) and parts.hostname not in insecure_hosts():
        raise ValueError(
            f"{name}: plain http is only allowed for loopback hosts, got {parts.hostname} (use https; "
            f"{INSECURE_HOSTS_ENV} lists hosts allowed over http, for a local sandbox only)"
        )
    return url.rstrip("/")


def same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        import time

        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def request(
    session: requests.Session,
    method: str,
    url: str,
    *,
    retry_after: Callable[[requests.Response], float | None] | None = None,
    **kwargs: Any,
) -> requests.Response:
    """One HTTP call, mapped onto our error types; the body is read unless ``stream`` is set.

    :raises TransportError: no usable response
    :raises ApiError: a subclass for each status class
    """
    kwargs.setdefault("timeout", TIMEOUT)
    try:
        response = session.request(method, url, **kwargs)
        if not kwargs.get("stream"):
            _ = response.content  # a truncated body raises here, inside the mapping below
    except requests.exceptions.ConnectTimeout as exc:
        raise TransportError(f"connect timeout: {type(exc).__name__}", sent=False, url=url, method=method) from None
    except requests.exceptions.ConnectionError as exc:
        raise TransportError(
            f"connection failed: {_reason(exc)}", sent=not _never_connected(exc), url=url, method=method
        ) from None
    except (
        requests.exceptions.Timeout,
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ContentDecodingError,
    ) as exc:
        raise TransportError(f"incomplete response: {_reason(exc)}", url=url, method=method) from None
    raise_for_status(response, retry_after=retry_after)
    return response


def raise_for_status(
    response: requests.Response,
    *,
    retry_after: Callable[[requests.Response], float | None] | None = None,
) -> None:
    status = response.status_code
    if status < 300:
        return
    kw: dict[str, Any] = {
        "status": status,
        "url": response.url,
        "method": response.request.method if response.request else None,
        "body": _text(response),
    }
    if status < 400:
        location = response.headers.get("Location")
        target = redact_url(urljoin(response.url, location)) if location else "nowhere"
        raise ApiError(f"redirect to {target} not followed: credentials stay with the API's host", **kw)
    if status == 429:
        wait = retry_after(response) if retry_after else retry_after_seconds(response.headers.get("Retry-After"))
        raise RateLimited("rate limited", retry_after=wait, **kw)
    if status >= 500:
        raise ServerError("server error", **kw)
    errors: dict[int, type[ApiError]] = {
        401: AuthError,
        403: AuthError,
        404: NotFound,
        409: Conflict,
        410: Gone,
    }
    if status in errors:
        raise errors[status]("request refused", **kw)
    raise BadRequest("request rejected", **kw)


def json_body(response: requests.Response, *, expect: type = dict) -> Any:
    """The parsed body, checked for its outer shape; a malformed body counts as truncated."""
    try:
        payload = response.json()
    except ValueError:
        raise TransportError(
            "malformed or truncated JSON body",
            status=response.status_code,
            url=response.url,
            body=_text(response),
        ) from None
    if not isinstance(payload, expect):
        raise ApiError(
            f"unexpected response shape: {type(payload).__name__} instead of {expect.__name__}",
            status=response.status_code,
            url=response.url,
            body=_text(response),
        )
    return payload


def _text(response: requests.Response) -> str:
    try:
        return response.text[:500]
    except Exception:  # a body we cannot decode says nothing useful
        return ""


def _reason(exc: BaseException) -> str:
    # requests' messages embed the full URL (with signed-URL credentials): name the cause only.
    inner = exc.args[0] if exc.args else exc
    reason = getattr(inner, "reason", inner)
    return type(reason).__name__ if isinstance(reason, BaseException) else type(exc).__name__


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    inner = exc.args[0] if exc.args else None
    return isinstance(getattr(inner, "reason", None), NewConnectionError)
