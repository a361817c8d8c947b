"""Replay: retry exactly the photos a window's report lists as failed, exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import AccBuildPassError, ConfigError, one_line
from acc_buildpass.models import (
    AccPhoto,
    Batch,
    Outcome,
    PhotoStatus,
    ProjectMapping,
    ReplayStatus,
    Window,
    format_time,
    valid_id,
)
from acc_buildpass.pipeline.extract import acc_mapping_problem, classify
from acc_buildpass.pipeline.folders import resolve_folder
from acc_buildpass.pipeline.publish import publish_batch
from acc_buildpass.pipeline.stage import stage_batch
from acc_buildpass.storage import Store

REPLAY_BATCH_BASE = 90000  # replay batches' outcomes sit beside the DAG's, never on its indexes


FETCH_CHUNK = 50  # ids per photos_by_id call


ReplayProgress = Callable[[int, int, str], None]  # (photos done, photos to replay, what is under way)


# The names cli/render.py and dag_tasks.py use.
STILL_FAILED, NOT_REPLAYABLE = ReplayStatus.STILL_FAILED, ReplayStatus.NOT_REPLAYABLE


@dataclass(frozen=True)
class ReplayEntry:
    acc_project_id: str
    photo_id: str
    status: ReplayStatus
    reason: str = ""
    was: str = ""  # the reason the window's report gave

    def as_dict(self) -> dict[str, str]:
        return {
            "acc_project_id": self.acc_project_id,
            "photo_id": self.photo_id,
            "status": self.status.value,
            "reason": self.reason,
            "reported_reason": self.was,
        }


@dataclass(frozen=True)
class _ToReplay:
    """One mapping's failed photos that are still to copy, with the reasons the report gave."""

    mapping: ProjectMapping
    photos: list[AccPhoto]
    was: dict[str, str]


def replayable_id(photo_id: object) -> bool:
    """A report entry that names one photo (not "*" or "batch <label>")."""
    return isinstance(photo_id, str) and valid_id(photo_id)


def _replay_outcome(project: str, stage: Outcome, published: dict[str, Outcome], was: str) -> ReplayEntry:
    photo_id = stage.photo_id
    if stage.status == PhotoStatus.PRESENT:
        return ReplayEntry(project, photo_id, ReplayStatus.PRESENT, "already in BuildPass (ledger)", was)
    if stage.status == PhotoStatus.SKIPPED:  # the stage step skips a photo only when it was deleted meanwhile
        return ReplayEntry(project, photo_id, ReplayStatus.DELETED, stage.reason, was)
    if stage.status != PhotoStatus.STAGED:
        return ReplayEntry(project, photo_id, STILL_FAILED, stage.reason or stage.status.value, was)
    final = published.get(photo_id)
    if final is None:
        return ReplayEntry(project, photo_id, STILL_FAILED, "missing from the publish outcome", was)
    if final.status == PhotoStatus.CREATED:
        return ReplayEntry(project, photo_id, ReplayStatus.CREATED, "", was)
    if final.status == PhotoStatus.PRESENT:
        return ReplayEntry(project, photo_id, ReplayStatus.PRESENT, "already in BuildPass", was)
    return ReplayEntry(project, photo_id, STILL_FAILED, final.reason or final.status.value, was)


def _replay_batch(
    acc: AccClient, buildpass: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch, was: dict[str, str]
) -> list[ReplayEntry]:
    """Stage then publish one replay batch with the DAG's step functions, writing their outcomes
    where the DAG's tasks write them (the publish step reads the stage outcome from there)."""
    project = batch.acc_project_id
    photo_ids = [p.id for p in store.read_manifests(batch.parts)]
    try:
        staged = stage_batch(acc, store, config, batch)
        store.put_json(store.layout.batch_outcome(batch.window, batch.index, "stage"), staged)
        published = {o.photo_id: o for o in publish_batch(buildpass, store, config, batch)}
        store.put_json(store.layout.batch_outcome(batch.window, batch.index, "publish"), list(published.values()))
    except ConfigError:
        raise
    except AccBuildPassError as exc:  # the whole batch (an API that stayed down): every photo still failed
        reason = f"{batch.label} failed: {one_line(exc)}"
        return [ReplayEntry(project, pid, STILL_FAILED, reason, was.get(pid, "")) for pid in photo_ids]
    return [_replay_outcome(project, o, published, was.get(o.photo_id, "")) for o in staged]


def replay(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    window: Window,
    progress: ReplayProgress | None = None,
    *,
    only: Collection[str] | None = None,
) -> dict[str, Any]:
    """Retry exactly the photos the window's report lists as failed, and report what came of each.

    The current ACC record of every failed photo is fetched by id (photos deleted since are
    reported, not copied); the rest go through the DAG's stage and publish steps in batches
    numbered from :data:`REPLAY_BATCH_BASE`, from manifest parts under the window's ``replay/``
    prefix. The ledger and ``bulk-upsert``'s idempotency keep each photo in BuildPass exactly
    once: a photo already there is reported ``present`` and neither downloaded nor sent again.
    The result is written to ``report-replay.json`` beside the window's report (which is left
    as the DAG wrote it).

    :param progress: called before each batch with (photos done, photos to replay, the batch)
    :param only: the ACC projects whose failures to replay (the others are left as they are)

    :raises ConfigError: no report for the window (run the DAG for it first), the bucket is not
        usable, or a mapped project does not exist on either side
    """
    store.check_bucket()
    source_key, source = _window_report(store, window)
    entries, work = _sort_failures(acc, config, source["projects"], only)
    entries += _replay_all(acc, buildpass, store, config, window, work, progress)
    counts = Counter(e.status for e in entries)
    result = {
        "window": {"start": format_time(window.start), "end": format_time(window.end), "id": window.id},
        "replayed_at": format_time(datetime.now(UTC)),
        "source_report": {"key": source_key, "run_id": source.get("run_id")},
        "publish_mode": config.publish_mode,
        "only_projects": sorted(only) if only is not None else None,
        "photos": [e.as_dict() for e in entries],
        "totals": {status.value: counts.get(status, 0) for status in ReplayStatus},
    }
    store.put_json(store.layout.replay_report(window, "json"), result)
    return result


def _window_report(store: Store, window: Window) -> tuple[str, dict[str, Any]]:
    """(its key, the report) of the window's last run.

    :raises ConfigError: there is none: the DAG has not reconciled the window
    """
    source_key = store.layout.report(window, "json")
    source = store.get_json(source_key)
    if not isinstance(source, dict) or not isinstance(source.get("projects"), list):
        raise ConfigError(
            f"no report for window {window.id} at s3://{store.bucket}/{source_key}: run the DAG for the window "
            "first (airflow dags trigger acc_to_buildpass_photos with window_start/window_end), then replay "
            "what it could not copy"
        )
    return source_key, source


def _sort_failures(
    acc: AccClient, config: PipelineConfig, rows: list[Any], only: Collection[str] | None
) -> tuple[list[ReplayEntry], list[_ToReplay]]:
    """The report's failures, project by project: (what will not be retried, and why; what will)."""
    mappings = {m.acc_project_id: m for m in config.projects}
    entries: list[ReplayEntry] = []
    work: list[_ToReplay] = []
    for row in rows:
        project = str(row.get("acc_project_id") or "")
        failed = [f for f in row.get("failed") or [] if isinstance(f, dict)]
        if not failed or (only is not None and project not in only):
            continue
        mapping = mappings.get(project)
        refused, was = _reported_failures(project, failed, mapped=mapping is not None)
        entries += refused
        if mapping is None or not was:
            continue
        gone, todo = _current_records(acc, config, mapping, was)
        entries += gone
        if todo:
            work.append(_ToReplay(mapping, todo, was))
    return entries, work


def _reported_failures(
    project: str, failed: list[dict[str, Any]], *, mapped: bool
) -> tuple[list[ReplayEntry], dict[str, str]]:
    """(the failures that name no photo to retry; each photo to retry, once, with its reported reason)"""
    refused: list[ReplayEntry] = []
    was: dict[str, str] = {}
    for item in failed:
        photo_id, reason = str(item.get("photo_id", "")), str(item.get("reason", ""))
        if not mapped:
            why = "the project is no longer mapped in the Variable"
            refused.append(ReplayEntry(project, photo_id, NOT_REPLAYABLE, why, reason))
        elif not replayable_id(photo_id):
            why = "names no single photo: run the DAG for the window again"
            refused.append(ReplayEntry(project, photo_id, NOT_REPLAYABLE, why, reason))
        elif photo_id not in was:
            was[photo_id] = reason
    return refused, was


def _current_records(
    acc: AccClient, config: PipelineConfig, mapping: ProjectMapping, was: dict[str, str]
) -> tuple[list[ReplayEntry], list[AccPhoto]]:
    """Each failed photo's ACC record now: (those no longer to copy, and why; the photos to copy).

    :raises ConfigError: the mapped ACC project is not visible
    """
    problem_found = acc_mapping_problem(acc, config.projects.index(mapping), mapping)
    if problem_found:
        raise ConfigError(problem_found)
    project, ids = mapping.acc_project_id, list(was)
    current: dict[str, AccPhoto] = {}
    for start in range(0, len(ids), FETCH_CHUNK):
        current.update(acc.photos_by_id(project, ids[start : start + FETCH_CHUNK]))
    gone: list[ReplayEntry] = []
    todo: list[AccPhoto] = []
    for photo_id in ids:
        photo = current.get(photo_id)
        verdict = _not_to_copy(photo, was[photo_id], config.media_types)
        if verdict is not None:
            gone.append(ReplayEntry(project, photo_id, *verdict, was[photo_id]))
        elif photo is not None:
            todo.append(replace(photo, file_url=None))  # the stage step asks for fresh signed URLs
    return gone, todo


def _not_to_copy(photo: AccPhoto | None, was: str, media_types: tuple[str, ...]) -> tuple[ReplayStatus, str] | None:
    """(status, reason) for a failed photo not to copy again, or None when it is to be copied."""
    if photo is None:
        if was.startswith("unreadable ACC record"):  # photos_by_id leaves such records out
            return STILL_FAILED, "ACC did not return a readable record for it"
        return ReplayStatus.DELETED, "no longer in ACC"
    verdict = classify(photo, media_types)
    if verdict is None:
        return None
    status, reason = verdict
    if photo.deleted_at is not None:
        return ReplayStatus.DELETED, reason
    return (ReplayStatus.SKIPPED if status == PhotoStatus.SKIPPED else STILL_FAILED), reason


def _replay_all(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    window: Window,
    work: list[_ToReplay],
    progress: ReplayProgress | None,
) -> list[ReplayEntry]:
    """Copy the photos to retry in batches of ``batch_size``, numbered from :data:`REPLAY_BATCH_BASE`."""
    entries: list[ReplayEntry] = []
    index = REPLAY_BATCH_BASE
    total, done = sum(len(w.photos) for w in work), 0
    for mapping, todo, was in ((w.mapping, w.photos, w.was) for w in work):
        folder = resolve_folder(buildpass, mapping, config.folder_name)
        groups = [todo[i : i + config.batch_size] for i in range(0, len(todo), config.batch_size)]
        for n, group in enumerate(groups, start=1):
            key = store.layout.replay_part(window, mapping.acc_project_id, n - 1)
            store.write_manifest(key, group)
            batch = Batch.of(
                mapping,
                window,
                index=index,
                label=f"replay {mapping.label} {n}/{len(groups)}",
                folder_id=folder,
                parts=(key,),
                count=len(group),
            )
            index += 1
            if progress is not None:
                progress(done, total, f"{batch.label}: {len(group)} photo(s)")
            entries += _replay_batch(acc, buildpass, store, config, batch, was)
            done += len(group)
    return entries


def replay_ok(result: dict[str, Any]) -> bool:
    """Nothing still failed, and every failure the report listed named a photo to retry."""
    totals = result["totals"]
    return totals[STILL_FAILED] == 0 and totals[NOT_REPLAYABLE] == 0
