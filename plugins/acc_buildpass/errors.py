"""Our own error types: callers branch on types, and every error keeps status, URL and body.

URLs are kept without their query string: ACC's signed URLs carry credentials there.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_BODY_LIMIT = 500


def redact_url(url: str | None) -> str | None:
    """Drop the query string and fragment (signed URL credentials live there)."""
    if not url:
        return url
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class AccBuildPassError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AccBuildPassError):
    """The configuration (Variable, connection, run conf) is wrong; the message says what to fix."""


class ApiError(AccBuildPassError):
    """An HTTP call failed.

    :param status: the HTTP status, or None when no response arrived
    :param url: the URL called, without its query string
    :param body: the start of the response body, as text
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        url: str | None = None,
        body: str | None = None,
        method: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.url = redact_url(url)
        self.method = method
        self.body = body[:_BODY_LIMIT] if body else body
        super().__init__(str(self))

    def __str__(self) -> str:
        where = " ".join(p for p in (self.method, self.url) if p)
        status = f" -> {self.status}" if self.status is not None else ""
        body = f": {self.body}" if self.body else ""
        return f"{self.message} ({where}{status}){body}" if where else f"{self.message}{body}"


class AuthError(ApiError):
    """401/403 from an API, or a token endpoint refusing our credentials."""


class RefreshTokenRejected(AuthError):
    """The ACC token endpoint answered invalid_grant: the refresh token chain is broken."""


class BadRequest(ApiError):
    """400/413/422: the request itself is wrong; retrying it will not help."""


class NotFound(ApiError):
    """404."""


class Gone(ApiError):
    """410 from ACC: the photo was deleted by a user."""


class Conflict(ApiError):
    """409."""


class RateLimited(ApiError):
    """429. ``retry_after`` is in seconds when the server said how long to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)  # type: ignore[arg-type]


class ServerError(ApiError):
    """5xx."""


class SignedUrlExpired(ApiError):
    """403 from the storage behind an ACC signed URL: fetch a fresh URL."""


class TransportError(ApiError):
    """No usable response: connection refused or reset, timeout, truncated or malformed body.

    ``sent`` is False only when the request certainly never reached the server, so a call
    that is not idempotent may be replayed without checking what the server did.
    """

    def __init__(self, message: str, *, sent: bool = True, **kw: object) -> None:
        self.sent = sent
        super().__init__(message, **kw)  # type: ignore[arg-type]


class StorageError(AccBuildPassError):
    """An object-storage call failed; its message is the underlying error's, so a finding can quote it.

    :param operation: the S3 call that failed (``HeadBucket``, ``PutObject``, ``DeleteObject``...)
    :param code: S3's error code, empty when S3 gave none
    :param unreachable: True when no answer came at all (endpoint, network, credentials not found)
    """

    def __init__(self, message: str, *, operation: str, code: str = "", unreachable: bool = False) -> None:
        self.operation = operation
        self.code = code
        self.unreachable = unreachable
        super().__init__(message)


class InvalidPhoto(AccBuildPassError):
    """One photo cannot be copied as it is; ``photo_id`` and ``reason`` go into the report."""

    def __init__(self, photo_id: str | None, reason: str) -> None:
        self.photo_id = photo_id
        self.reason = reason
        super().__init__(f"photo {photo_id or '<no id>'}: {reason}")


def one_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(exc: BaseException) -> str:
    """One line for an error a command could not get past."""
    if isinstance(exc, AccBuildPassError):
        return str(exc)
    return f"{type(exc).__name__}: {one_line(exc)}"
