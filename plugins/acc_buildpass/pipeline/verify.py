"""Verify: read BuildPass back and reconcile a window's eligible ACC photos (``acc-buildpass verify``).

Per project mapping:

1. ACC is listed the way extraction lists it (``photos:filter`` on ``createdAt``, pages of 50) and
   :func:`acc_buildpass.pipeline.extract.triage` decides which photos are eligible.
2. BuildPass's photos of the project are listed once (``GET /photos?projectId=``, no folder: a
   photo a user moved to another folder is still found).
3. Each eligible photo is linked to its BuildPass photos the way ``follow-edits`` links them
   (:class:`acc_buildpass.pipeline.follow_edits.Gallery`): by ``externalSourceId`` when BuildPass
   returns it, else by the photo id or attachment key the ledger recorded. The ledger is read
   only for photos no ``externalSourceId`` links.

Reported apart: **absent** (eligible, in no BuildPass photo), **doubled** (in two or more),
**wrong size** (BuildPass's ``fileSize`` differs from ACC's size, or the staged size when ACC
gives none), **unlinked** (a BuildPass photo of this window linked to no eligible ACC photo), and
**not linkable** (the ledger says created but names nothing BuildPass shows, and BuildPass
returns no ``externalSourceId``: neither absent nor confirmed). A listing that looks capped (a
paging hint in the reply, or a round count) is reported as possibly incomplete: absences are
then not proof.

Which BuildPass photos count as this window's: those an ACC photo listed in the window links
to (by ``externalSourceId``, or through its ledger entry), deleted or skipped ones included.
Photos of other windows, of other ACC projects mapped to the same BuildPass project, and photos
added by hand are counted (``not_of_this_window``), never judged: nothing ties them to the window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient, BuildPassPhoto
from acc_buildpass.config import PipelineConfig, ProjectMapping
from acc_buildpass.errors import ConfigError, NotFound
from acc_buildpass.models import AccPhoto, LedgerState, Window, format_time
from acc_buildpass.pipeline.extract import UNREADABLE, triage
from acc_buildpass.pipeline.follow_edits import Gallery
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)

# What can be wrong with a photo (stored in verify.json by these values).
ABSENT, DOUBLED, WRONG_SIZE, UNLINKED, NOT_LINKABLE = "absent", "doubled", "wrong_size", "unlinked", "not_linkable"
PROBLEMS = (ABSENT, DOUBLED, WRONG_SIZE, UNLINKED, NOT_LINKABLE)
# Listing lengths that look like a cap rather than a count (BuildPass documents no paging).
ROUND_COUNTS = frozenset({50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000})
LEDGER_PAGE = 1000  # keys per S3 listing page
# What a verify costs, per project: ACC pages of 50, BuildPass listings, S3 ledger listings and
# reads, HEADs of staged objects (only for photos whose ACC size is 0 or absent).
COST_KEYS = ("acc_pages", "buildpass_listings", "ledger_listings", "ledger_reads", "staged_heads")

Progress = Callable[[ProjectMapping, int, int], None]  # (mapping, ACC pages so far, records so far)


@dataclass(frozen=True)
class Finding:
    """One thing wrong, naming the ACC photo and the BuildPass photos involved."""

    problem: str
    acc_project_id: str
    photo_id: str
    buildpass_photo_ids: tuple[str, ...] = ()
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "acc_project_id": self.acc_project_id,
            "photo_id": self.photo_id,
            "buildpass_photo_ids": list(self.buildpass_photo_ids),
            "reason": self.reason,
        }


@dataclass
class ProjectVerify:
    """What reading one mapping's BuildPass project back found, and what it cost."""

    mapping: ProjectMapping
    listed: int = 0  # ACC records in the window
    eligible: int = 0
    confirmed: int = 0  # eligible, in BuildPass exactly once, of the right size (or a size unknown)
    buildpass_listed: int = 0
    not_of_this_window: int = 0
    listing_incomplete: str | None = None
    findings: list[Finding] = field(default_factory=list)
    cost: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COST_KEYS, 0))

    def counts(self) -> dict[str, int]:
        return {
            "listed": self.listed,
            "eligible": self.eligible,
            "confirmed": self.confirmed,
            **{p: sum(f.problem == p for f in self.findings) for p in PROBLEMS},
        }

    def as_dict(self) -> dict[str, Any]:
        ids = ("acc_project_id", "builder_id", "buildpass_project_id")
        return {
            **{name: getattr(self.mapping, name) for name in ids},
            **self.counts(),
            "buildpass_listed": self.buildpass_listed,
            "not_of_this_window": self.not_of_this_window,
            "listing_incomplete": self.listing_incomplete,
            "cost": dict(self.cost),
        }


def listing_incomplete(photos: list[BuildPassPhoto], paging_hint: str | None) -> str | None:
    """Why BuildPass's listing may not hold every photo of the project, or None when nothing says so."""
    if paging_hint:
        return f"the reply hints at more pages ({paging_hint}), and BuildPass documents no paging"
    if len(photos) in ROUND_COUNTS:
        return f"exactly {len(photos)} photos, a round number: BuildPass may cap its listing"
    return None


def _list_acc(
    acc: AccClient, config: PipelineConfig, result: ProjectVerify, window: Window, progress: Progress | None
) -> tuple[dict[str, AccPhoto], dict[str, str]]:
    """The window's photos as extraction sees them: (eligible by id, the others' ids → why not copied)."""
    mapping = result.mapping

    def on_page(count: int) -> None:
        result.cost["acc_pages"] += 1
        result.listed += count
        if progress is not None:
            progress(mapping, result.cost["acc_pages"], result.listed)

    eligible: dict[str, AccPhoto] = {}
    others: dict[str, str] = {}
    try:
        listing = acc.iter_photos(mapping.acc_project_id, window.start, window.end, on_page=on_page)
        for photo, photo_id, verdict in triage(listing, config.media_types):
            if verdict or photo is None:
                others[photo_id] = (verdict or UNREADABLE)[1]
            else:
                eligible[photo_id] = photo
    except NotFound:
        raise ConfigError(f"{mapping.label}: no such ACC project {mapping.acc_project_id!r}") from None
    result.eligible = len(eligible)
    return eligible, others


def _list_buildpass(buildpass: BuildPassClient, result: ProjectVerify) -> Gallery:
    mapping = result.mapping
    try:
        listing = buildpass.photo_listing(mapping.builder_id, mapping.buildpass_project_id)
    except NotFound:
        raise ConfigError(
            f"{mapping.label}: no such project {mapping.buildpass_project_id!r} in BuildPass builder "
            f"{mapping.builder_id!r}"
        ) from None
    result.cost["buildpass_listings"] += 1
    result.buildpass_listed = len(listing.photos)
    result.listing_incomplete = listing_incomplete(listing.photos, listing.paging_hint)
    if result.listing_incomplete:
        log.warning("%s: BuildPass listing possibly incomplete: %s", mapping.label, result.listing_incomplete)
    return Gallery.of(listing.photos)


def _ledger_entries(
    store: Store, config: PipelineConfig, result: ProjectVerify, gallery: Gallery, photo_ids: list[str]
) -> dict[str, Any]:
    """The ledger entries of the photos no externalSourceId links (one S3 listing per 1,000 entries,
    then one read a photo that has an entry)."""
    mapping = result.mapping
    recorded = store.ledger_ids(mapping.builder_id, mapping.buildpass_project_id)
    result.cost["ledger_listings"] += max(1, math.ceil(len(recorded) / LEDGER_PAGE))
    to_read = [i for i in photo_ids if i in recorded and gallery.sourced(i) is None]
    result.cost["ledger_reads"] += len(to_read)
    with ThreadPoolExecutor(max_workers=config.download_threads, thread_name_prefix="ledger") as pool:
        entries = pool.map(
            lambda i: store.get_json(store.layout.ledger(mapping.builder_id, mapping.buildpass_project_id, i)), to_read
        )
        return dict(zip(to_read, entries, strict=True))


def _absent_reason(entry: Any) -> tuple[str, str]:
    """(absent or not linkable, why) for an eligible photo no BuildPass photo links to."""
    if not isinstance(entry, dict):
        return ABSENT, "in no BuildPass photo, and no ledger entry: never copied (see the window's report)"
    if entry.get("state") != LedgerState.CREATED:
        return ABSENT, "in no BuildPass photo; the ledger holds only an intent (a create never confirmed)"
    named = entry.get("buildpass_photo_id") or entry.get("attachment_key")
    if named:
        return ABSENT, f"the ledger says created ({named}), but BuildPass lists no such photo (deleted or archived?)"
    return NOT_LINKABLE, (
        "the ledger says created but records no BuildPass photo id or attachment key, and BuildPass returns no "
        "externalSourceId: cannot tell which BuildPass photo it is"
    )


def _known_sizes(
    store: Store, config: PipelineConfig, result: ProjectVerify, photos: list[AccPhoto]
) -> dict[str, int | None]:
    """Each photo's size: ACC's when positive, else the staged object's (one HEAD a photo)."""
    sizes: dict[str, int | None] = {p.id: p.size for p in photos if p.size}
    unknown = [p for p in photos if not p.size]
    result.cost["staged_heads"] += len(unknown)

    def staged(photo: AccPhoto) -> int | None:
        head = store.head(store.layout.object_key(photo.project_id, photo.id))
        size = ((head or {}).get("Metadata") or {}).get("size")
        return int(size) if isinstance(size, str) and size.isdigit() else None

    with ThreadPoolExecutor(max_workers=config.download_threads, thread_name_prefix="staged") as pool:
        sizes.update(zip((p.id for p in unknown), pool.map(staged, unknown), strict=True))
    return sizes


def _check_eligible(
    store: Store,
    config: PipelineConfig,
    result: ProjectVerify,
    gallery: Gallery,
    eligible: dict[str, AccPhoto],
    entries: dict[str, Any],
) -> set[str]:
    """Findings for the eligible photos; the BuildPass photos they link to."""
    project = result.mapping.acc_project_id
    links = {i: gallery.linked(i, entries.get(i)) for i in eligible}
    sizes = _known_sizes(store, config, result, [p for i, p in eligible.items() if links[i]])
    for photo_id, linked in links.items():
        if not linked:
            problem, reason = _absent_reason(entries.get(photo_id))
            result.findings.append(Finding(problem, project, photo_id, reason=reason))
            continue
        found = len(result.findings)
        if len(linked) > 1:
            reason = f"in BuildPass {len(linked)} times"
            result.findings.append(Finding(DOUBLED, project, photo_id, tuple(linked), reason))
        size = sizes.get(photo_id)
        wrong = [(i, gallery.active[i].file_size) for i in linked if _differs(gallery.active[i].file_size, size)]
        if wrong:
            shown = ", ".join(f"{i} has {n}" for i, n in wrong)
            reason = f"BuildPass fileSize differs from the {size} bytes copied: {shown}"
            result.findings.append(Finding(WRONG_SIZE, project, photo_id, tuple(i for i, _ in wrong), reason))
        if len(result.findings) == found:
            result.confirmed += 1
    return {i for linked in links.values() for i in linked}


def _differs(file_size: int | None, size: int | None) -> bool:
    return file_size is not None and size is not None and file_size != size


def _check_unlinked(
    result: ProjectVerify, gallery: Gallery, others: dict[str, str], entries: dict[str, Any], claimed: set[str]
) -> None:
    """Findings for the BuildPass photos of this window that no eligible photo links to: those of
    photos listed in the window but not to be copied (deleted in ACC since, a media type not copied)."""
    project = result.mapping.acc_project_id
    ours = set(claimed)
    for photo_id, why in others.items():
        linked = [i for i in gallery.linked(photo_id, entries.get(photo_id)) if i not in claimed]
        ours.update(linked)
        if linked:
            reason = f"BuildPass holds it, but the ACC photo is not to be copied now ({why})"
            result.findings.append(Finding(UNLINKED, project, photo_id, tuple(linked), reason))
    result.not_of_this_window = len(set(gallery.active) - ours)


def verify_project(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    mapping: ProjectMapping,
    window: Window,
    progress: Progress | None = None,
) -> ProjectVerify:
    """Reconcile one mapping's eligible photos of the window with BuildPass's listing. Reads only.

    :raises ConfigError: the ACC or BuildPass project does not exist
    """
    result = ProjectVerify(mapping)
    eligible, others = _list_acc(acc, config, result, window, progress)
    gallery = _list_buildpass(buildpass, result)
    entries = _ledger_entries(store, config, result, gallery, [*eligible, *others])
    claimed = _check_eligible(store, config, result, gallery, eligible, entries)
    _check_unlinked(result, gallery, others, entries, claimed)
    counts = result.counts()
    log.info("%s: %s", mapping.label, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return result


def verify(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    window: Window,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Every mapping of ``config``; the result (JSON-able: ids, counts, reasons), also written beside
    the window's report (:meth:`acc_buildpass.storage.Layout.verify_report`).

    :raises ConfigError: the bucket is not usable, or a mapped project does not exist
    """
    store.check_bucket()
    projects = [verify_project(acc, buildpass, store, config, m, window, progress) for m in config.projects]
    result = verify_json(window, projects)
    store.put_json(store.layout.verify_report(window), result)
    return result


_TOTAL_KEYS = ("listed", "eligible", "confirmed", *PROBLEMS)


def verify_json(window: Window, projects: list[ProjectVerify]) -> dict[str, Any]:
    rows = [p.as_dict() for p in projects]
    totals = {k: sum(r[k] for r in rows) for k in _TOTAL_KEYS}
    incomplete = [p.mapping.acc_project_id for p in projects if p.listing_incomplete]
    return {
        "window": {"start": format_time(window.start), "end": format_time(window.end), "id": window.id},
        "ok": not incomplete and not any(totals[p] for p in PROBLEMS),
        "projects": rows,
        "totals": {**totals, "listing_incomplete": len(incomplete)},
        "cost": {k: sum(r["cost"][k] for r in rows) for k in COST_KEYS},
        "findings": [f.as_dict() for p in projects for f in p.findings],
    }


def verify_ok(result: dict[str, Any]) -> bool:
    """Nothing wrong, and every listing looked complete."""
    return bool(result["ok"])
