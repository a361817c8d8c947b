"""Durable storage of ACC's single-use refresh tokens, with one refresher at a time.

Autodesk rotates the refresh token on every use and kills the old one at once. So the new
token is written (atomically, fsynced) before its access token is used, and refreshing
happens under an exclusive lock shared by every task process on the host. The access token
is kept too, so parallel tasks reuse it instead of refreshing at all.

The file is readable by its owner only and, given a Fernet key, encrypted.
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

from cryptography.fernet import Fernet, InvalidToken

from acc_buildpass.errors import ConfigError


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenState:
    """What survives between processes.

    :param seed: fingerprint of the refresh token the connection was configured with; when
        the operator configures a new one, it replaces the stored chain
    """

    refresh_token: str
    seed: str
    access_token: str | None = None
    access_expires_at: float = 0.0
    updated_at: float = 0.0

    def access_valid(self, margin: float = 60.0) -> bool:
        return bool(self.access_token) and self.access_expires_at - margin > time.time()


class FileTokenStore:
    """One JSON file per (ACC host, client id) in ``directory``, guarded by ``flock``.

    Works for every task process on one host (LocalExecutor, several Celery workers on one
    machine); workers on several hosts need the directory on a shared file system that
    honours ``flock`` (NFSv4), or another store with the same three methods.
    """

    def __init__(self, directory: str | os.PathLike[str], key: str, fernet_key: str | None = None) -> None:
        self.directory = Path(directory)
        self.name = hashlib.sha256(key.encode()).hexdigest()[:20]
        self._fernet = Fernet(fernet_key.encode()) if fernet_key else None

    @property
    def path(self) -> Path:
        return self.directory / f"acc-token-{self.name}.json"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.directory / f"acc-token-{self.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load(self) -> TokenState | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if self._fernet is not None:
            try:
                raw = self._fernet.decrypt(raw)
            except InvalidToken:
                raise ConfigError(
                    f"the ACC token store {self.path} cannot be decrypted with the configured key: "
                    "restore the key, or delete the file and set a fresh extra.refresh_token"
                ) from None
        elif raw.startswith(b"gAAAA"):
            raise ConfigError(f"the ACC token store {self.path} is encrypted but no key is configured")
        return TokenState(**json.loads(raw))

    def save(self, state: TokenState) -> None:
        data = json.dumps(asdict(state)).encode()
        if self._fernet is not None:
            data = self._fernet.encrypt(data)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".acc-token-")
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
