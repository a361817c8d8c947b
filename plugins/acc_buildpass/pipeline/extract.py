"""Extract: list each project's ACC photos in the window and write the manifest in parts."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.config import PipelineConfig, ProjectMapping
from acc_buildpass.errors import ConfigError, InvalidPhoto, NotFound
from acc_buildpass.pipeline.batches import Batch, plan
from acc_buildpass.records import MEDIA_TYPES, AccPhoto, Window
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)


def check_mappings(acc: AccClient, buildpass: BuildPassClient, config: PipelineConfig) -> None:
    """Fail before anything moves when a mapped project does not exist on either side.

    :raises ConfigError: naming the mapping key to fix
    """
    for i, mapping in enumerate(config.projects):
        try:
            acc.check_project(mapping.acc_project_id)
        except NotFound:
            raise ConfigError(
                f"projects[{i}].acc_project_id {mapping.acc_project_id!r}: no such ACC project "
                "visible to the signed-in user"
            ) from None
        try:
            buildpass.list_folders(mapping.builder_id, mapping.buildpass_project_id)
        except NotFound:
            raise ConfigError(
                f"projects[{i}].buildpass_project_id {mapping.buildpass_project_id!r}: no such project "
                f"in BuildPass builder {mapping.builder_id!r}"
            ) from None
        if mapping.buildpass_folder_id:
            try:
                buildpass.get_folder(mapping.builder_id, mapping.buildpass_folder_id)
            except NotFound:
                raise ConfigError(
                    f"projects[{i}].buildpass_folder_id {mapping.buildpass_folder_id!r}: no such folder "
                    f"in builder {mapping.builder_id!r}"
                ) from None


def resolve_folder(buildpass: BuildPassClient, mapping: ProjectMapping, name: str) -> str:
    """The folder photos go to: the mapped one, else the one named ``name`` (made once).

    Two runs may create the folder at the same moment; both then settle on the oldest one
    and the loser removes its own, still empty.
    """
    if mapping.buildpass_folder_id:
        return mapping.buildpass_folder_id
    existing = [f for f in buildpass.list_folders(mapping.builder_id, mapping.buildpass_project_id) if f.name == name]
    if existing:
        return min(existing, key=lambda f: (f.created_at, f.id)).id
    mine = buildpass.create_folder(mapping.builder_id, mapping.buildpass_project_id, name)
    existing = [f for f in buildpass.list_folders(mapping.builder_id, mapping.buildpass_project_id) if f.name == name]
    oldest = min(existing or [mine], key=lambda f: (f.created_at, f.id))
    if oldest.id != mine.id:
        buildpass.delete_folder(mapping.builder_id, mine.id)
    log.info("Created BuildPass folder %r (%s) in %s", name, oldest.id, mapping.buildpass_project_id)
    return oldest.id


def classify(photo: AccPhoto, allowed: tuple[str, ...]) -> tuple[str, str] | None:
    """(status, reason) for a photo that will not be copied, or None when it will."""
    if photo.deleted_at is not None:
        return "skipped", "deleted in ACC"
    if photo.media_type not in MEDIA_TYPES:
        return "failed", f"unknown mediaType {photo.media_type!r} (known: {', '.join(MEDIA_TYPES)})"
    if photo.media_type not in allowed:
        return "skipped", f"mediaType {photo.media_type} not copied"
    return None


def extract_project(
    acc: AccClient, store: Store, config: PipelineConfig, mapping: ProjectMapping, window: Window
) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Page through one project; write eligible photos in manifest parts of ``batch_size``.

    Memory stays flat: at most one part is held at a time, plus the set of ids seen.
    :returns: the parts (key, count) and the summary written beside them
    """
    parts: list[tuple[str, int]] = []
    buffer: list[AccPhoto] = []
    seen: set[str] = set()
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    found = 0

    def flush() -> None:
        if buffer:
            key = store.layout.manifest_part(window, mapping.acc_project_id, len(parts))
            store.write_manifest(key, buffer)
            parts.append((key, len(buffer)))
            buffer.clear()

    for item in acc.iter_photos(mapping.acc_project_id, window.start, window.end):
        found += 1
        if isinstance(item, InvalidPhoto):
            failed.append({"photo_id": item.photo_id or "<no id>", "reason": f"unreadable ACC record: {item.reason}"})
            continue
        if item.id in seen:
            found -= 1
            log.warning("ACC listed photo %s twice; keeping one", item.id)
            continue
        seen.add(item.id)
        verdict = classify(item, config.media_types)
        if verdict:
            (skipped if verdict[0] == "skipped" else failed).append({"photo_id": item.id, "reason": verdict[1]})
            continue
        buffer.append(replace(item, file_url=None))  # signed URLs expire long before staging
        if len(buffer) >= config.batch_size:
            flush()
    flush()
    summary = {
        "acc_project_id": mapping.acc_project_id,
        "builder_id": mapping.builder_id,
        "buildpass_project_id": mapping.buildpass_project_id,
        "found": found,
        "eligible": sum(count for _, count in parts),
        "skipped": skipped,
        "failed": failed,
        "parts": [{"key": k, "count": c} for k, c in parts],
    }
    store.put_json(store.layout.extract_summary(window, mapping.acc_project_id), summary)
    log.info(
        "%s: %d photos in window, %d eligible in %d parts, %d skipped, %d unreadable",
        mapping.label,
        found,
        summary["eligible"],
        len(parts),
        len(skipped),
        len(failed),
    )
    return parts, summary


def extract(
    acc: AccClient, buildpass: BuildPassClient, store: Store, config: PipelineConfig, window: Window
) -> list[Batch]:
    """Check the mappings, resolve folders, extract every project, and plan the batches."""
    store.check_bucket()
    check_mappings(acc, buildpass, config)
    parts: dict[ProjectMapping, list[tuple[str, int]]] = {}
    for mapping in config.projects:
        folder = resolve_folder(buildpass, mapping, config.folder_name)
        project_parts, _ = extract_project(acc, store, config, mapping, window)
        parts[replace(mapping, buildpass_folder_id=folder)] = project_parts
    batches = plan(parts, window, config.max_batches)
    log.info("Window %s: %d batches planned", window.id, len(batches))
    return batches
