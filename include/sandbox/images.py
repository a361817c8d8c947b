"""Deterministic media bytes for the emulators, generated from (key, size) and streamed.

A generated JPEG is a real, decodable 8x8 grey baseline JPEG padded to exactly ``size`` bytes
with comment (COM) segments of pseudo-random filler derived from the key:

    FF D8 | APP0 "JFIF" | COM filler ... | DQT | SOF0 | DHT DC | DHT AC | SOS | scan | FF D9

Nothing is ever built whole: :func:`iter_jpeg` yields chunks, so a 200 MB photo costs one
64 KB filler block of memory. The same (key, size) always gives the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import random
import struct
from collections.abc import Iterator

CHUNK = 64 * 1024

_SOI = b"\xff\xd8"
_APP0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x01\x01" + b"\x00" + b"\x00\x01\x00\x01" + b"\x00\x00"
# Everything after the filler: one 8x8 block, grey, with one-code Huffman tables.
_DQT = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + b"\x01" * 64
_SOF0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 8, 8, 1) + b"\x01\x11\x00"
_DHT_DC = b"\xff\xc4" + struct.pack(">H", 20) + b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00"
_DHT_AC = b"\xff\xc4" + struct.pack(">H", 20) + b"\x10" + b"\x01" + b"\x00" * 15 + b"\x00"
_SOS = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00" + b"\x00\x3f\x00"
_SCAN = b"\x3f"  # DC category 0 ("0"), EOB ("0"), padded with ones
_EOI = b"\xff\xd9"

HEAD = _SOI + _APP0
TAIL = _DQT + _SOF0 + _DHT_DC + _DHT_AC + _SOS + _SCAN + _EOI
MIN_FULL_JPEG = len(HEAD) + len(TAIL)  # 159 bytes: smaller sizes give a degenerate JPEG

_MAX_SEGMENT = 2 + 65535  # a COM marker plus its largest length
_BLOCK = 65533  # the largest COM payload


@functools.lru_cache(maxsize=64)
def _block(key: str) -> bytes:
    return random.Random("filler:" + key).randbytes(_BLOCK)


def _filler_segments(total: int) -> list[int]:
    """Sizes (marker included) of COM segments adding up to ``total`` bytes (each >= 4)."""
    if total <= 0:
        return []
    full, rest = divmod(total, _MAX_SEGMENT)
    sizes = [_MAX_SEGMENT] * full
    if rest == 0:
        return sizes
    if rest >= 4:
        return [*sizes, rest]
    if full:
        sizes[-1] -= 4
        return [*sizes, rest + 4]
    return [-rest]  # 1..3 bytes: FF fill bytes before the next marker (allowed by T.81 B.1.1.2)


def _pieces(key: str, size: int) -> Iterator[bytes | tuple[int]]:
    """The file as literal pieces and (n,) = n bytes of filler payload."""
    if size < MIN_FULL_JPEG:
        if size < 4:
            yield (_SOI + _EOI)[:size]
            return
        head = HEAD[: max(size - 2, 0)]
        yield head
        yield b"\xff" * (size - 2 - len(head))
        yield _EOI
        return
    yield HEAD
    for seg in _filler_segments(size - MIN_FULL_JPEG):
        if seg < 0:
            yield b"\xff" * -seg
            continue
        yield b"\xff\xfe" + struct.pack(">H", seg - 2)
        yield (seg - 4,)
    yield TAIL


def iter_jpeg(key: str, size: int, chunk_size: int = CHUNK, limit: int | None = None) -> Iterator[bytes]:
    """The bytes of the generated JPEG in chunks of at most ``chunk_size``; stops after ``limit``."""
    block = _block(key) if size >= MIN_FULL_JPEG else b""
    return _chunked(_pieces(key, size), block, chunk_size, size if limit is None else min(limit, size))


def _chunked(pieces: Iterator[bytes | tuple[int]], block: bytes, chunk_size: int, limit: int) -> Iterator[bytes]:
    out = bytearray()
    left = limit
    for piece in pieces:
        if left <= 0:
            break
        data = block[: piece[0]] if isinstance(piece, tuple) else piece
        data = data[:left]
        left -= len(data)
        out += data
        while len(out) >= chunk_size:
            yield bytes(out[:chunk_size])
            del out[:chunk_size]
    if out:
        yield bytes(out)


def jpeg_bytes(key: str, size: int) -> bytes:
    """The whole generated JPEG (only for small sizes)."""
    return b"".join(iter_jpeg(key, size))


def iter_mp4(key: str, size: int, chunk_size: int = CHUNK, limit: int | None = None) -> Iterator[bytes]:
    """A stand-in MP4 (``ftyp`` box then one ``mdat`` box of filler), for VIDEO records."""
    ftyp = struct.pack(">I", 24) + b"ftypisom" + struct.pack(">I", 512) + b"isomiso2"
    if size < len(ftyp) + 8:
        pieces: list[bytes | tuple[int]] = [(ftyp + struct.pack(">I", 8) + b"mdat")[:size]]
    else:
        pieces = [ftyp, struct.pack(">I", size - len(ftyp)) + b"mdat"]
        rest = size - len(ftyp) - 8
        while rest > 0:
            pieces.append((min(rest, _BLOCK),))
            rest -= _BLOCK
    return _chunked(iter(pieces), _block("mp4:" + key), chunk_size, size if limit is None else min(limit, size))


def sha256_of(chunks: Iterator[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    total = 0
    for chunk in chunks:
        digest.update(chunk)
        total += len(chunk)
    return digest.hexdigest(), total


# -- magic numbers ---------------------------------------------------------------------------

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"heif", b"avif"}


def sniff_image(head: bytes) -> str | None:
    """The image type from the first bytes (JPEG, PNG, GIF, WebP, HEIC/HEIF, TIFF), else None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "image/heic"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    return None
