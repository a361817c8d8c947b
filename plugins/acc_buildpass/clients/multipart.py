"""A multipart/form-data body that streams its files instead of building the body in memory.

requests' own ``files=`` reads every file into one bytes object; photos can be 200 MB.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO


@dataclass(frozen=True)
class FilePart:
    """:param open: returns a fresh stream of exactly ``size`` bytes (called once per attempt)"""

    name: str
    filename: str
    content_type: str
    size: int
    open: Callable[[], IO[bytes]]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartBody:
    """A file-like body of known length: requests sends it with Content-Length, in blocks."""

    def __init__(self, fields: list[tuple[str, str]], files: list[FilePart]) -> None:
        self.boundary = "accbp" + secrets.token_hex(16)
        self._pieces: list[bytes | FilePart] = []
        for name, value in fields:
            self._pieces.append(
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
        for part in files:
            self._pieces.append(
                f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(part.name)}"; '
                f'filename="{_quote(part.filename)}"\r\nContent-Type: {part.content_type}\r\n\r\n'.encode()
            )
            self._pieces.append(part)
            self._pieces.append(b"\r\n")
        self._pieces.append(f"--{self.boundary}--\r\n".encode())
        self.len = sum(p.size if isinstance(p, FilePart) else len(p) for p in self._pieces)
        self._index = 0
        self._buffer = b""
        self._stream: IO[bytes] | None = None
        self._left = 0

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.len

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self.len
        out = bytearray()
        while len(out) < size:
            if self._stream is not None:
                chunk = self._stream.read(min(size - len(out), self._left))
                if not chunk:
                    raise OSError(f"a file part ended {self._left} bytes short of its announced size")
                out += chunk
                self._left -= len(chunk)
                if self._left == 0:
                    self._stream.close()
                    self._stream = None
                continue
            if self._buffer:
                take = self._buffer[: size - len(out)]
                out += take
                self._buffer = self._buffer[len(take) :]
                continue
            if self._index >= len(self._pieces):
                break
            piece = self._pieces[self._index]
            self._index += 1
            if isinstance(piece, FilePart):
                if piece.size:
                    self._stream = piece.open()
                    self._left = piece.size
            else:
                self._buffer = piece
        return bytes(out)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
