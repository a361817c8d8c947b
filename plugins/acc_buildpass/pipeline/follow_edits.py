"""Follow edits: carry ACC edits of copied photos (title, description, takenAt) over to BuildPass.

Over the photos created in ACC in ``[until - days, until)``, per project mapping:

1. ACC is listed the way extraction lists it (``photos:filter`` on ``createdAt``, pages of 50),
   soft-deleted photos included; the ledger is listed (one S3 listing per 1,000 entries) to keep
   the photos that were copied.
2. BuildPass's photos of the project are listed once (``GET /photos?projectId=``, one request).
3. Each copied photo is linked to its BuildPass photo: from this step's own cache of links
   (one object per mapping), else from its ledger entry (``buildpass_photo_id`` of a single-mode
   create, or the ``attachment_key`` a bulk upsert recorded, which the BuildPass photo carries as
   ``key``), else by an ``externalSourceId`` if BuildPass ever returns one.
4. :func:`acc_buildpass.mapping.edited_fields` gives what BuildPass should show; the photo is
   patched with the fields that differ, and only those.

We compare with what BuildPass has now rather than with what was sent at copy time: the listing
costs one request per project and is the truth the operator sees; a PATCH whose answer was lost
is repaired by the next run; no copy-time record of the fields is needed (bulk-mode ledger entries
have none); and once patched, a photo compares equal, so a second run patches nothing. The
unknown that could break that (BuildPass normalising what it stores) is met by comparing
``capturedAt`` as instants and an empty description as none. ACC wins: an edit made in BuildPass
to one of these three fields of a photo in the period is replaced by ACC's value.

A copied photo deleted in ACC (listed with ``deletedAt``, or, as ACC may also hide deleted photos,
linked by an earlier run, gone from the listing and answering 410/404) is reported. BuildPass
documents no DELETE of one photo (only GET and PATCH on ``/photos/{photoId}``; the bulk-upsert
DELETE archives every photo of a source), so the ``delete`` policy cannot be honoured: such a
photo is reported as failed, naming the BuildPass photo to remove by hand.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient, BuildPassPhoto
from acc_buildpass.config import PipelineConfig, ProjectMapping
from acc_buildpass.errors import ApiError, Gone, InvalidPhoto, NotFound
from acc_buildpass.mapping import content_type_of, edited_fields
from acc_buildpass.models import AccPhoto, EditStatus, LedgerState, format_time, parse_time
from acc_buildpass.settings import DELETE_POLICIES
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)

# What each photo looked at came to (the names cli/render.py uses).
PATCHED, WOULD_PATCH, UNCHANGED, DELETED_IN_ACC, FAILED = (
    EditStatus.PATCHED,
    EditStatus.WOULD_PATCH,
    EditStatus.UNCHANGED,
    EditStatus.DELETED_IN_ACC,
    EditStatus.FAILED,
)
NO_PHOTO_DELETE = (
    "BuildPass documents no DELETE of one photo (GET and PATCH only; the bulk-upsert DELETE would archive "
    "every photo of the source)"
)


@dataclass(frozen=True)
class EditOutcome:
    """One copied photo looked at: what was done, the fields changed (names only) and why."""

    acc_project_id: str
    photo_id: str
    status: EditStatus
    buildpass_photo_id: str | None = None
    changes: tuple[str, ...] = ()
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["changes"] = list(self.changes)
        return data


@dataclass
class ProjectEdits:
    mapping: ProjectMapping
    listed: int = 0
    outcomes: list[EditOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        by_status = Counter(o.status for o in self.outcomes)
        return {
            "listed": self.listed,
            "looked_at": len(self.outcomes),
            **{status.value: by_status[status] for status in EditStatus},
        }


def period(days: int, until: datetime) -> tuple[datetime, datetime]:
    """:raises ValueError: days is not a whole number of at least 1"""
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError(f"days must be a whole number of at least 1, got {days!r}")
    if until.tzinfo is None:
        raise ValueError("until must carry a time zone")
    return until - timedelta(days=days), until


def _same(field_name: str, wanted: Any, current: Any) -> bool:
    if field_name == "description":
        return (wanted or None) == (current or None)
    if field_name == "capturedAt":
        try:
            return current is not None and parse_time(wanted) == parse_time(current)
        except ValueError:
            return False
    return bool(wanted == current)


def changes_for(photo: AccPhoto, current: BuildPassPhoto) -> dict[str, Any]:
    """The PATCH body: the mapped fields that differ from what BuildPass shows (empty: nothing to do)."""
    content_type = current.content_type or content_type_of(current.file_name) or "image/jpeg"
    wanted = edited_fields(photo, content_type)
    shown = {"fileName": current.file_name, "description": current.description, "capturedAt": current.captured_at}
    return {name: value for name, value in wanted.items() if not _same(name, value, shown[name])}


def _link_from_ledger(entry: Any, gallery: Gallery) -> str | None:
    if not isinstance(entry, dict) or entry.get("state") != LedgerState.CREATED:
        return None
    linked = gallery.from_ledger(entry)
    return linked[0] if linked else None


def follow_project(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    mapping: ProjectMapping,
    since: datetime,
    until: datetime,
    *,
    delete_policy: str = "report",
    dry_run: bool = False,
) -> ProjectEdits:
    """Follow one mapping's edits over photos created in ``[since, until)``."""
    result = ProjectEdits(mapping)
    copied = store.ledger_ids(mapping.builder_id, mapping.buildpass_project_id)
    links_key = store.layout.follow_links(mapping.builder_id, mapping.buildpass_project_id, mapping.acc_project_id)
    cached = store.get_json(links_key)
    links: dict[str, dict[str, str]] = cached.get("links", {}) if isinstance(cached, dict) else {}
    listed = _copied_in_acc(acc, mapping, since, until, copied, result)
    _add_deleted_linked(acc, mapping, since, until, listed, {i: v for i, v in links.items() if i in copied})
    gallery = Gallery.of(buildpass.list_photos(mapping.builder_id, mapping.buildpass_project_id))
    from_ledger = _ledger_links(store, config, mapping, listed, links, gallery)

    new_links: dict[str, dict[str, str]] = {}
    for photo_id, photo in sorted(listed.items(), key=lambda kv: (kv[1].created_at, kv[0])):
        cached_id = links.get(photo_id, {}).get("buildpass_photo_id")
        bp_id = (
            cached_id
            if cached_id in gallery.active
            else from_ledger.get(photo_id) or gallery.sourced(photo_id) or (cached_id if photo.deleted_at else None)
        )
        if bp_id:
            new_links[photo_id] = {"buildpass_photo_id": bp_id, "created_at": format_time(photo.created_at)}
        result.outcomes.append(
            _follow_photo(
                buildpass, mapping, photo, bp_id, gallery.active, delete_policy=delete_policy, dry_run=dry_run
            )
        )
    if not dry_run and new_links != links:
        store.put_json(links_key, {"links": new_links, "until": format_time(until)})
    counts = result.counts()
    log.info("%s: %s", mapping.label, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return result


@dataclass(frozen=True)
class Gallery:
    """A BuildPass project's photos now: by id, and the ids by attachment key and by externalSourceId
    (all of them, oldest first: one ACC photo may be in BuildPass more than once).

    How a BuildPass photo is linked to the ACC photo it was copied from, here and in ``verify``:
    by ``externalSourceId`` when BuildPass returns one (top level or in ``metadata``), else by
    what the ledger recorded: the photo id of a single-mode create, or the attachment key(s) of
    our uploads, which the BuildPass photo carries as ``key``.
    """

    active: dict[str, BuildPassPhoto]
    by_key: dict[str, list[str]]
    by_source: dict[str, list[str]]

    @classmethod
    def of(cls, photos: list[BuildPassPhoto]) -> Gallery:
        by_key: dict[str, list[str]] = {}
        by_source: dict[str, list[str]] = {}
        for photo in photos:
            if photo.key:
                by_key.setdefault(photo.key, []).append(photo.id)
            if photo.external_source_id:
                by_source.setdefault(photo.external_source_id, []).append(photo.id)
        return cls(active={p.id: p for p in photos}, by_key=by_key, by_source=by_source)

    def sourced(self, acc_photo_id: str) -> str | None:
        """The BuildPass photo whose externalSourceId is this ACC photo's id (the first), if any."""
        found = self.by_source.get(acc_photo_id)
        return found[0] if found else None

    def from_ledger(self, entry: Any) -> list[str]:
        """The BuildPass photos a ledger entry names, any state: its photo id first, then those that
        carry one of its attachment keys."""
        if not isinstance(entry, dict):
            return []
        photo_id = entry.get("buildpass_photo_id")
        named = [photo_id] if isinstance(photo_id, str) and photo_id in self.active else []
        intents = entry.get("attachment_keys")
        keys = [entry.get("attachment_key"), *(intents if isinstance(intents, list) else [])]
        keyed = [i for k in keys if isinstance(k, str) for i in self.by_key.get(k, [])]
        return list(dict.fromkeys([*named, *keyed]))

    def linked(self, acc_photo_id: str, entry: Any) -> list[str]:
        """Every BuildPass photo that is this ACC photo: by externalSourceId, by the ledger, and any
        other photo made from the same attachment (a create replayed with the same upload)."""
        found = [*self.by_source.get(acc_photo_id, []), *self.from_ledger(entry)]
        keys = {key for i in found if (key := self.active[i].key)}
        return list(dict.fromkeys([*found, *(i for k in sorted(keys) for i in self.by_key[k])]))


def _copied_in_acc(
    acc: AccClient, mapping: ProjectMapping, since: datetime, until: datetime, copied: set[str], result: ProjectEdits
) -> dict[str, AccPhoto]:
    """The copied photos ACC lists in the period, soft-deleted ones included; counts every record
    listed in ``result``, and reports a copied photo whose record cannot be read."""
    listed: dict[str, AccPhoto] = {}
    for item in acc.iter_photos(mapping.acc_project_id, since, until):
        result.listed += 1
        if isinstance(item, InvalidPhoto):
            if item.photo_id in copied:
                reason = f"unreadable ACC record: {item.reason}"
                result.outcomes.append(EditOutcome(mapping.acc_project_id, item.photo_id, FAILED, reason=reason))
            continue
        if item.id in copied:
            listed.setdefault(item.id, item)
    return listed


def _add_deleted_linked(
    acc: AccClient,
    mapping: ProjectMapping,
    since: datetime,
    until: datetime,
    listed: dict[str, AccPhoto],
    links: dict[str, dict[str, str]],
) -> None:
    """ACC may leave deleted photos out of listings: each photo linked earlier, created in the
    period and gone from the listing is asked for, and added to ``listed`` when deleted."""
    for photo_id, link in links.items():
        if photo_id in listed:
            continue
        try:
            created = parse_time(link.get("created_at"))
        except ValueError:
            continue
        if not since <= created < until:
            continue
        try:
            photo = acc.get_photo(mapping.acc_project_id, photo_id)
        except (Gone, NotFound):
            listed[photo_id] = AccPhoto(photo_id, mapping.acc_project_id, "", "", None, "", created, None, until)
            continue
        if photo.deleted_at is not None:
            listed[photo_id] = photo  # otherwise it moved out of the period (its createdAt changed)


def _ledger_links(
    store: Store,
    config: PipelineConfig,
    mapping: ProjectMapping,
    listed: dict[str, AccPhoto],
    links: dict[str, dict[str, str]],
    gallery: Gallery,
) -> dict[str, str | None]:
    """The BuildPass photo the ledger links each photo to, for those no link or externalSourceId
    links already; a photo the ledger holds only an intent for is dropped from ``listed``."""
    unlinked = [
        i
        for i in listed
        if links.get(i, {}).get("buildpass_photo_id") not in gallery.active and gallery.sourced(i) is None
    ]
    from_ledger: dict[str, str | None] = {}
    with ThreadPoolExecutor(max_workers=config.download_threads, thread_name_prefix="ledger") as pool:
        entries = pool.map(
            lambda i: store.get_json(store.layout.ledger(mapping.builder_id, mapping.buildpass_project_id, i)),
            unlinked,
        )
        for photo_id, entry in zip(unlinked, entries, strict=True):
            if isinstance(entry, dict) and entry.get("state") != LedgerState.CREATED:
                del listed[photo_id]  # only an intent: not copied (the copy's report says why), nothing to follow
            else:
                from_ledger[photo_id] = _link_from_ledger(entry, gallery)
    return from_ledger


def _follow_photo(
    buildpass: BuildPassClient,
    mapping: ProjectMapping,
    photo: AccPhoto,
    bp_id: str | None,
    active: dict[str, BuildPassPhoto],
    *,
    delete_policy: str,
    dry_run: bool,
) -> EditOutcome:
    project = mapping.acc_project_id
    if photo.deleted_at is not None:
        where = f"BuildPass photo {bp_id}" if bp_id else "its BuildPass photo (not linked)"
        if bp_id and bp_id not in active:
            return EditOutcome(project, photo.id, DELETED_IN_ACC, bp_id, reason="deleted in ACC; gone from BuildPass")
        if delete_policy == "delete":
            return EditOutcome(
                project, photo.id, FAILED, bp_id, reason=f"deleted in ACC; cannot delete {where}: {NO_PHOTO_DELETE}"
            )
        return EditOutcome(
            project, photo.id, DELETED_IN_ACC, bp_id, reason=f"deleted in ACC; {where} left (delete policy: report)"
        )
    if bp_id is None:
        return EditOutcome(
            project,
            photo.id,
            FAILED,
            reason="copied, but neither the ledger nor BuildPass tells which BuildPass photo it became "
            f"(copied before links were recorded, or archived in BuildPass project {mapping.buildpass_project_id})",
        )
    changes = changes_for(photo, active[bp_id])
    if not changes:
        return EditOutcome(project, photo.id, UNCHANGED, bp_id)
    names = tuple(sorted(changes))
    if dry_run:
        return EditOutcome(project, photo.id, WOULD_PATCH, bp_id, names)
    try:
        buildpass.update_photo(mapping.builder_id, bp_id, changes)
    except ApiError as exc:
        return EditOutcome(project, photo.id, FAILED, bp_id, names, reason=f"PATCH failed after retries: {exc}")
    return EditOutcome(project, photo.id, PATCHED, bp_id, names)


def follow_edits(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    days: int,
    until: datetime,
    *,
    delete_policy: str = "report",
    dry_run: bool = False,
    on_project: Callable[[ProjectEdits], None] | None = None,
) -> dict[str, Any]:
    """Every mapping; the summary (JSON-able: ids, counts, field names and reasons, never a secret).

    :raises ValueError: bad ``days``, ``until`` or ``delete_policy``
    """
    if delete_policy not in DELETE_POLICIES:
        raise ValueError(f"delete policy must be one of {', '.join(DELETE_POLICIES)}, got {delete_policy!r}")
    since, until = period(days, until)
    projects = []
    for mapping in config.projects:
        edits = follow_project(
            acc, buildpass, store, config, mapping, since, until, delete_policy=delete_policy, dry_run=dry_run
        )
        if on_project is not None:
            on_project(edits)
        projects.append(edits)
    rows = [
        {
            "acc_project_id": p.mapping.acc_project_id,
            "builder_id": p.mapping.builder_id,
            "buildpass_project_id": p.mapping.buildpass_project_id,
            **p.counts(),
        }
        for p in projects
    ]
    count_keys = ("listed", "looked_at", *(status.value for status in EditStatus))
    return {
        "since": format_time(since),
        "until": format_time(until),
        "days": days,
        "delete_policy": delete_policy,
        "dry_run": dry_run,
        "projects": rows,
        "totals": {k: sum(r[k] for r in rows) for k in count_keys},
        # Unchanged photos are counted, not listed: the summary stays small (it is an XCom too).
        "photos": [o.as_dict() for p in projects for o in p.outcomes if o.status != UNCHANGED],
    }


def failures(result: dict[str, Any]) -> list[str]:
    return [f"{p['photo_id']}: {p['reason']}" for p in result["photos"] if p["status"] == FAILED]
