"""Extract: list each project's ACC photos in the window and write the manifest in parts."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.config import PipelineConfig, ProjectMapping
from acc_buildpass.errors import ConfigError, InvalidPhoto, NotFound
from acc_buildpass.models import MEDIA_TYPES, AccPhoto, Batch, PhotoStatus, Window
from acc_buildpass.pipeline import folders, listing
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)

LISTING_THREADS = 8  # ACC listings at once: projects, and time slices of a project's big window


def acc_mapping_problem(acc: AccClient, index: int, mapping: ProjectMapping) -> str | None:
    """What to fix when mapping ``index``'s ACC project is not visible, else None.

    :raises ApiError: any other failure (the API is down, the sign-in is refused...)
    """
    try:
        acc.check_project(mapping.acc_project_id)
    except NotFound:
        return acc_mapping_problem_text(index, mapping)
    return None


def acc_mapping_problem_text(index: int, mapping: ProjectMapping) -> str:
    return (
        f"projects[{index}].acc_project_id {mapping.acc_project_id!r}: no such ACC project "
        "visible to the signed-in user"
    )


Verdict = tuple[PhotoStatus, str]  # (skipped or failed, why) for a photo that will not be copied
UNREADABLE: Verdict = (PhotoStatus.FAILED, "unreadable ACC record")


def classify(photo: AccPhoto, allowed: tuple[str, ...]) -> Verdict | None:
    """(status, reason) for a photo that will not be copied, or None when it will.

    A mediaType ACC did not list when this was written is skipped like VIDEO, never failed:
    a failure would fail every run over its window, and ``replay`` could not help. The
    Variable's ``media_types`` may opt it in.
    """
    if photo.deleted_at is not None:
        return PhotoStatus.SKIPPED, "deleted in ACC"
    if not photo.media_type:
        return PhotoStatus.FAILED, "the ACC record has no mediaType"
    if photo.media_type not in allowed:
        if photo.media_type not in MEDIA_TYPES:
            log.warning("Photo %s has mediaType %s, not one ACC listed; skipped", photo.id, photo.media_type)
        return PhotoStatus.SKIPPED, f"mediaType {photo.media_type} not copied"
    return None


def triage(
    items: Iterable[AccPhoto | InvalidPhoto], allowed: tuple[str, ...]
) -> Iterator[tuple[AccPhoto | None, str, Verdict | None]]:
    """Each listed record once, as (photo or None, photo id, verdict from :func:`classify`).

    A record that cannot be read has no photo and the verdict ("failed", why); a photo listed
    twice is kept once. Shared by extraction and ``acc-buildpass plan``, so both count alike.
    """
    seen: set[str] = set()
    for item in items:
        if isinstance(item, InvalidPhoto):
            yield None, item.photo_id or "<no id>", (PhotoStatus.FAILED, f"unreadable ACC record: {item.reason}")
            continue
        if item.id in seen:
            log.warning("ACC listed photo %s twice; keeping one", item.id)
            continue
        seen.add(item.id)
        yield item, item.id, classify(item, allowed)


def extract_project(
    acc: AccClient, store: Store, config: PipelineConfig, mapping: ProjectMapping, window: Window, slices: int = 1
) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """Page through one project, a window of more than a page in ``slices`` listings at once
    (:mod:`listing`); write eligible photos in manifest parts of ``batch_size``.

    Memory stays flat: at most one part is held at a time, plus the set of ids seen.
    :returns: the parts (key, count) and the summary written beside them
    """
    parts: list[tuple[str, int]] = []
    buffer: list[AccPhoto] = []
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    found = 0

    def flush() -> None:
        if buffer:
            key = store.layout.manifest_part(window, mapping.acc_project_id, len(parts))
            store.write_manifest(key, buffer)
            parts.append((key, len(buffer)))
            buffer.clear()

    listed = _listing(acc, config.projects.index(mapping), mapping, window, slices)
    for photo, photo_id, verdict in triage(listed, config.media_types):
        found += 1
        if verdict or photo is None:
            status, reason = verdict or UNREADABLE
            (skipped if status == PhotoStatus.SKIPPED else failed).append({"photo_id": photo_id, "reason": reason})
            continue
        buffer.append(replace(photo, file_url=None))  # signed URLs expire long before staging
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


def _listing(
    acc: AccClient, index: int, mapping: ProjectMapping, window: Window, slices: int
) -> Iterator[AccPhoto | InvalidPhoto]:
    """The project's photos in the window; the listing itself proves the mapping's ACC side.

    :raises ConfigError: ACC does not know the project (404), naming the key to fix
    """
    try:
        yield from listing.photos(acc, mapping.acc_project_id, window.start, window.end, slices)
    except NotFound:
        raise ConfigError(acc_mapping_problem_text(index, mapping)) from None


def plan_batches(parts: dict[ProjectMapping, list[tuple[str, int]]], window: Window, max_batches: int) -> list[Batch]:
    """Group manifest parts into at most about ``max_batches`` batches, never across projects."""
    total = sum(len(p) for p in parts.values())
    per_batch = max(1, -(-total // max_batches))
    batches: list[Batch] = []
    for mapping, project_parts in parts.items():
        groups = [project_parts[i : i + per_batch] for i in range(0, len(project_parts), per_batch)]
        for n, group in enumerate(groups, start=1):
            batches.append(
                Batch.of(
                    mapping,
                    window,
                    index=len(batches),
                    label=f"{mapping.label} {n}/{len(groups)}",
                    folder_id=mapping.buildpass_folder_id,
                    parts=tuple(key for key, _ in group),
                    count=sum(count for _, count in group),
                )
            )
    return batches


def _list_all(acc: AccClient, store: Store, config: PipelineConfig, window: Window) -> list[list[tuple[str, int]]]:
    """Every project's manifest parts, up to :data:`LISTING_THREADS` listings at once (a listing
    waits on ACC, one page after another): projects at once, each big window in slices for the
    threads left. The first project in the Variable's order that fails raises, once every
    listing has ended."""
    projects = config.projects
    at_once = max(1, min(LISTING_THREADS, len(projects)))
    slices = max(1, LISTING_THREADS // at_once)
    with ThreadPoolExecutor(at_once, thread_name_prefix="listing") as pool:
        futures = [pool.submit(extract_project, acc, store, config, m, window, slices) for m in projects]
    return [future.result()[0] for future in futures]


def extract(
    acc: AccClient, buildpass: BuildPassClient, store: Store, config: PipelineConfig, window: Window
) -> list[Batch]:
    """List every project, find the BuildPass folder of those with photos to copy, plan the batches.

    Nothing has moved yet when a mapping turns out wrong (:class:`ConfigError`, naming the key).
    BuildPass is asked only for projects with photos, and only the first time (:mod:`folders`).
    """
    store.check_bucket()
    parts: dict[ProjectMapping, list[tuple[str, int]]] = {}
    for index, (mapping, project_parts) in enumerate(
        zip(config.projects, _list_all(acc, store, config, window), strict=True)
    ):
        if project_parts:
            mapping = replace(mapping, buildpass_folder_id=folders.target(buildpass, store, config, index, mapping))
        parts[mapping] = project_parts
    batches = plan_batches(parts, window, config.max_batches)
    log.info("Window %s: %d batches planned", window.id, len(batches))
    return batches
