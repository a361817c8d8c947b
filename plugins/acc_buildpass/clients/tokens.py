"""Tokens kept between task processes, with one refresher at a time.

Two APIs use it:

- **ACC**: Autodesk rotates the refresh token on every use and kills the old one at once. So the
  new token is written (atomically, fsynced) before its access token is used, and refreshing
  happens under an exclusive lock shared by every task process on the host. The access token
  is kept too, so parallel tasks reuse it instead of refreshing at all.
- **BuildPass**: its client-credentials access token is kept, so the task processes of a run
  share one token instead of each asking for its own.

Each file is readable by its owner only and, given a Fernet key, encrypted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from acc_buildpass.errors import ConfigError


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (made owner-only when missing), shared by every process
    of this host: one holder at a time."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenState:
    """What survives between processes.

    :param refresh_token: ACC's current refresh token; empty for BuildPass (client credentials)
    :param seed: ACC: fingerprint of the refresh token the connection was configured with (when
        the operator configures a new one, it replaces the stored chain); BuildPass: fingerprint
        of the store key (host, client id, scope, the secret's fingerprint), never the secret
    """

    refresh_token: str = ""
    seed: str = ""
    access_token: str | None = None
    access_expires_at: float = 0.0
    updated_at: float = 0.0

    def access_valid(self, margin: float = 60.0) -> bool:
        return bool(self.access_token) and self.access_expires_at - margin > time.time()


@dataclass(frozen=True)
class StoreKind:
    """How one API's token files are named and how their errors read.

    :param api: the API as messages name it
    :param prefix: the start of its file names (``<prefix>-<name>.json`` and ``.lock``)
    :param recovery: what to do when its file cannot be decrypted
    """

    api: str
    prefix: str
    recovery: str


ACC = StoreKind("ACC", "acc-token", "restore the key, or delete the file and set a fresh extra.refresh_token")
BUILDPASS = StoreKind(
    "BuildPass", "buildpass-token", "restore the key, or delete the file (BuildPass then issues a new token)"
)


def _fernet(fernet_key: str | None) -> MultiFernet | None:
    """Airflow's ``fernet_key``: one key, or several comma-separated while rotating (the first encrypts).

    :raises ValueError: a key that is not 32 url-safe base64-encoded bytes
    """
    keys = [k.strip() for k in (fernet_key or "").split(",") if k.strip()]
    return MultiFernet([Fernet(k.encode()) for k in keys]) if keys else None


class FileTokenStore:
    """One JSON file per key (an API's host and client, for one ``kind``) in ``directory``,
    guarded by ``flock``.

    Works for every task process on one host (LocalExecutor, several Celery workers on one
    machine); workers on several hosts need the directory on a shared file system that
    honours ``flock`` (NFSv4), or another store with the same three methods.

    :param key: what the file is named after (hashed): ACC ``host|client id``; BuildPass see
        ``clients.buildpass.token_store_key``
    :param kind: ``ACC`` (the default: the file names stores have always had) or ``BUILDPASS``
    :raises ValueError: ``fernet_key`` is not a Fernet key (or comma-separated list of them)
    """

    def __init__(
        self, directory: str | os.PathLike[str], key: str, fernet_key: str | None = None, kind: StoreKind = ACC
    ) -> None:
        self.directory = Path(directory)
        self.name = hashlib.sha256(key.encode()).hexdigest()[:20]
        self.kind = kind
        self._fernet = _fernet(fernet_key)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.kind.prefix}-{self.name}.json"

    def lock(self) -> contextlib.AbstractContextManager[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        return exclusive(self.directory / f"{self.kind.prefix}-{self.name}.lock")

    def load(self) -> TokenState | None:
        """:raises ConfigError: the file is encrypted and the configured key cannot decrypt it"""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if self._fernet is not None:
            try:
                raw = self._fernet.decrypt(raw)
            except InvalidToken:
                raise ConfigError(
                    f"the {self.kind.api} token store {self.path} cannot be decrypted with the configured key: "
                    + self.kind.recovery
                ) from None
        elif raw.startswith(b"gAAAA"):
            raise ConfigError(f"the {self.kind.api} token store {self.path} is encrypted but no key is configured")
        return TokenState(**json.loads(raw))

    def save(self, state: TokenState) -> None:
        data = json.dumps(asdict(state)).encode()
        if self._fernet is not None:
            data = self._fernet.encrypt(data)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{self.kind.prefix}-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
