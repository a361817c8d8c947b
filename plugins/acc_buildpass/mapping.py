"""The one place that turns an ACC photo into a BuildPass photo."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from acc_buildpass.models import AccPhoto, format_time

# Magic numbers of the image formats BuildPass galleries take.
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
)
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/tiff": ".tif",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/heif": ".heif",
}
_KNOWN_SUFFIX = re.compile(r"\.(jpe?g|png|gif|tiff?|webp|heic|heif)$", re.IGNORECASE)
_SAFE_PUNCTUATION = frozenset("_-. ()")
MAX_STEM = 120
MAX_DESCRIPTION = 2000


def sniff_content_type(head: bytes) -> str | None:
    """The image type from the first bytes, or None when they are not an image we know."""
    for signature, offset, content_type in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"heif"):
        return "image/heic" if head[8:12] != b"heif" else "image/heif"
    return None


def file_name(photo: AccPhoto, content_type: str) -> str:
    """A safe file name from the title, with the extension of the real content type."""
    text = unicodedata.normalize("NFC", photo.title or "")
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = _KNOWN_SUFFIX.sub("", text.strip())
    text = "".join(map(_safe_char, text))
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"_+", "_", text).strip(" ._-")
    text = re.sub(r"\.{2,}", ".", text)
    stem = text[:MAX_STEM].rstrip(" ._-") or f"photo-{photo.id[:8]}"
    return stem + _EXTENSIONS.get(content_type, ".jpg")


def upload_name(photo: AccPhoto, content_type: str) -> str:
    """The file name of a photo's part in an upload: its ACC id, unique in a request, so each of
    BuildPass's answers can be matched to its part (their order is not documented). The
    gallery's name is the upsert's ``fileName``."""
    return photo.id + _EXTENSIONS.get(content_type, ".jpg")


def _safe_char(ch: str) -> str:
    # Letters, digits and marks stay: the vowel signs of Hindi or Thai and Arabic's harakat are marks.
    return ch if ch in _SAFE_PUNCTUATION or unicodedata.category(ch)[0] in "LMN" else "_"


def description(photo: AccPhoto) -> str | None:
    text = (photo.description or "").strip() or (photo.title or "").strip()
    return text[:MAX_DESCRIPTION] or None


def captured_at(photo: AccPhoto) -> str:
    """Camera time; the upload time stands in when the camera gave none."""
    return format_time(photo.taken_at or photo.created_at)


@dataclass(frozen=True)
class Target:
    builder_id: str
    project_id: str
    folder_id: str | None


def edited_fields(photo: AccPhoto, content_type: str) -> dict[str, Any]:
    """What follows the ACC record when it is edited: ``fileName``, ``description`` (None when
    there is none) and ``capturedAt``, as every create sends them and as ``PATCH
    /builders/{builderId}/photos/{photoId}`` takes them."""
    return {
        "fileName": file_name(photo, content_type),
        "description": description(photo),
        "capturedAt": captured_at(photo),
    }


def _with_edited_fields(body: dict[str, Any], photo: AccPhoto, content_type: str) -> dict[str, Any]:
    fields = edited_fields(photo, content_type)
    if not fields["description"]:
        del fields["description"]  # a create leaves it out
    return {**body, **fields}


def upsert_photo(photo: AccPhoto, content_type: str, attachment: dict[str, str], sequence: int) -> dict[str, Any]:
    """One entry of ``photo-gallery/bulk-upsert``'s ``photos``."""
    entry: dict[str, Any] = {
        "externalSourceId": photo.id,
        "contentType": content_type,
        "sequenceId": sequence,
        "imageAttachment": attachment,
    }
    return _with_edited_fields(entry, photo, content_type)


def create_photo(photo: AccPhoto, content_type: str, attachment: dict[str, str], target: Target) -> dict[str, Any]:
    """The body of ``POST /builders/{builderId}/photos``."""
    body: dict[str, Any] = {
        "projectId": target.project_id,
        "imageAttachment": attachment,
        "contentType": content_type,
        "externalSourceId": photo.id,
    }
    if target.folder_id:
        body["folderId"] = target.folder_id
    return _with_edited_fields(body, photo, content_type)


def content_type_of(name: str) -> str | None:
    """The image type a file name's extension stands for (as :func:`file_name` writes it), else None."""
    suffix = "." + name.rpartition(".")[2].lower() if "." in name else ""
    return next((ctype for ctype, ext in _EXTENSIONS.items() if ext == suffix), None)
