"""The BuildPass client at the edges the docs leave open, against the BuildPass emulator's worst answers."""

from __future__ import annotations

import hashlib
import io

import pytest
import sandbox
from acc_buildpass.clients.multipart import FilePart
from acc_buildpass.errors import BadRequest
from acc_buildpass.pipeline.halving import RequestSize, send_in_halves
from sandbox.images import jpeg_bytes

from tests.unit.pipeline.emulated import admin, buildpass_client


def files(count: int) -> list[FilePart]:
    """``count`` distinct small JPEGs, each part named as the pipeline names them (by photo id)."""
    blobs = [jpeg_bytes(f"photo-{n}", 2000 + 17 * n) for n in range(count)]
    return [
        FilePart("file", f"photo-{n}.jpg", "image/jpeg", len(blob), lambda blob=blob: io.BytesIO(blob))  # type: ignore[misc]
        for n, blob in enumerate(blobs)
    ]


def sha_of(part: FilePart) -> str:
    with part.open() as stream:
        return hashlib.sha256(stream.read()).hexdigest()


def test_the_token_call_carries_the_api_version(box: sandbox.Sandbox) -> None:
    admin(box.buildpass_url, "/answers", {"token_api_version": "required"})
    bp = buildpass_client(box)
    bp.sign_in()  # refused with 400 without the header
    assert bp.list_folders("buil_demo", "proj_demo") == []


@pytest.mark.parametrize("order", ["index", "unnamed", "shuffled"])
def test_each_bulk_upload_answer_is_matched_to_its_file(box: sandbox.Sandbox, order: str) -> None:
    admin(box.buildpass_url, "/answers", {"upload_order": order})
    parts = files(5)
    attachments = buildpass_client(box).upload_attachments("buil_demo", parts)
    stored = {
        a["key"]: a["sha256"] for a in admin(box.buildpass_url, "/attachments?builder_id=buil_demo")["attachments"]
    }
    assert [stored[a.key] for a in attachments] == [sha_of(p) for p in parts]


def test_uploads_over_a_byte_limit_are_halved_and_the_next_start_at_the_size_that_passed(
    box: sandbox.Sandbox,
) -> None:
    # Under limits=tight a bulk-upload over 4 MiB is refused with 413, whatever its file count.
    admin(box.buildpass_url, "/answers", {"limits": "tight"})
    big = [jpeg_bytes(f"big-{n}", 900_000) for n in range(8)]
    parts = [
        FilePart("file", f"big-{n}.jpg", "image/jpeg", len(b), lambda b=b: io.BytesIO(b))  # type: ignore[misc]
        for n, b in enumerate(big)
    ]
    bp, size = buildpass_client(box), RequestSize(8)
    pieces = send_in_halves(parts, lambda chunk: bp.upload_attachments("buil_demo", chunk), size)
    assert [len(p.items) for p in pieces] == [4, 4] and all(p.result for p in pieces)
    assert size.size == 4
    with pytest.raises(BadRequest, match="413"):
        bp.upload_attachments("buil_demo", parts[:5])
