from __future__ import annotations

from datetime import UTC, datetime

import pytest
from acc_buildpass.mapping import captured_at, description, file_name, sniff_content_type, upsert_photo
from acc_buildpass.models import AccPhoto


def photo(**kw: object) -> AccPhoto:
    base = dict(
        id="5439bfb7-8006-4388-a454-f02560f99566",
        project_id="p",
        title="Office Dry Wall",
        description="",
        size=10,
        media_type="NORMAL",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        taken_at=datetime(2025, 12, 31, 18, 15, tzinfo=UTC),
        deleted_at=None,
    )
    base.update(kw)
    return AccPhoto(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Office Dry Wall", "Office Dry Wall.jpg"),
        ("site.JPG", "site.jpg"),
        ("../../etc/passwd", "etc_passwd.jpg"),
        ("a/b\\c", "a_b_c.jpg"),
        ("bell\x07and\nnewline", "bell and newline.jpg"),
        ("工地照片 третий этаж", "工地照片 третий этаж.jpg"),
        ("", "photo-5439bfb7.jpg"),
        ("...", "photo-5439bfb7.jpg"),
    ],
)
def test_file_name_is_safe_and_keeps_the_title(title: str, expected: str) -> None:
    assert file_name(photo(title=title), "image/jpeg") == expected


def test_file_name_is_bounded_and_takes_the_real_extension() -> None:
    name = file_name(photo(title="x" * 500), "image/png")
    assert name.endswith(".png") and len(name) <= 124
    assert "/" not in name and ".." not in name


def test_description_falls_back_to_title_and_captured_at_to_created() -> None:
    assert description(photo(description="Left side")) == "Left side"
    assert description(photo(description="  ")) == "Office Dry Wall"
    assert description(photo(description="", title="")) is None
    assert captured_at(photo()) == "2025-12-31T18:15:00Z"
    assert captured_at(photo(taken_at=None)) == "2026-01-01T00:00:00Z"


def test_upsert_entry_carries_the_acc_id_as_external_source_id() -> None:
    entry = upsert_photo(photo(), "image/jpeg", {"key": "k", "regionId": "au1", "type": "attachment"}, 3)
    assert entry["externalSourceId"] == "5439bfb7-8006-4388-a454-f02560f99566"
    assert entry["fileName"] == "Office Dry Wall.jpg"
    assert entry["imageAttachment"]["key"] == "k"
    assert entry["sequenceId"] == 3


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n....", "image/png"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"\x00\x00\x00\x18ftypheic", "image/heic"),
        (b"<html>not an image", None),
        (b"", None),
    ],
)
def test_sniff_content_type(head: bytes, expected: str | None) -> None:
    assert sniff_content_type(head) == expected
