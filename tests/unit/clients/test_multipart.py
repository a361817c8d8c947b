from __future__ import annotations

import io
from email.parser import BytesParser
from email.policy import HTTP

import pytest
from acc_buildpass.clients.multipart import FilePart, MultipartBody


def parse(body: MultipartBody) -> dict[str, bytes]:
    raw = body.read(-1)
    assert len(raw) == len(body)
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + body.content_type.encode() + b"\r\n\r\n" + raw)
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
        for part in message.iter_parts()
    }


def test_body_streams_files_with_exact_length() -> None:
    blobs = [b"\xff\xd8\xff" + bytes(range(256)) * 40, b"second"]
    opened: list[int] = []

    def opener(i: int):  # type: ignore[no-untyped-def]
        def open_stream() -> io.BytesIO:
            opened.append(i)
            return io.BytesIO(blobs[i])

        return open_stream

    body = MultipartBody(
        [("type:0", "attachment"), ("type:1", "attachment")],
        [FilePart(f"file:{i}", f"n{i}.jpg", "image/jpeg", len(b), opener(i)) for i, b in enumerate(blobs)],
    )
    assert opened == []  # nothing is read before requests asks for it
    parts = parse(body)
    assert parts["file:0"] == blobs[0]
    assert parts["file:1"] == blobs[1]
    assert parts["type:1"] == b"attachment"


def test_small_reads_reassemble_the_same_body() -> None:
    def make() -> MultipartBody:
        return MultipartBody(
            [("type", "attachment")], [FilePart("file", "a.jpg", "image/jpeg", 1000, lambda: io.BytesIO(b"x" * 1000))]
        )

    first = make()
    whole = first.read(-1)
    body = make()
    whole = whole.replace(first.boundary.encode(), body.boundary.encode())
    chunks = []
    while chunk := body.read(7):
        chunks.append(chunk)
    assert b"".join(chunks) == whole


def test_a_short_file_is_an_error_not_a_silent_truncation() -> None:
    body = MultipartBody([], [FilePart("file", "a.jpg", "image/jpeg", 10, lambda: io.BytesIO(b"abc"))])
    with pytest.raises(OSError, match="short"):
        body.read(-1)
