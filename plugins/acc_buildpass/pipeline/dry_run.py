"""Plan: a dry run of a window (``acc-buildpass plan``): what a run would copy, skip or fail.

Reads only: ACC's listing (no signed URLs, no downloads) and the ledger's keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ConfigError
from acc_buildpass.models import PhotoStatus, ProjectMapping, Window, format_time
from acc_buildpass.pipeline.extract import UNREADABLE, acc_mapping_problem, triage
from acc_buildpass.storage import Store


@dataclass
class ProjectPlan:
    """What a run of the window would do for one mapping (counts from ACC and the ledger)."""

    mapping: ProjectMapping
    found: int = 0
    eligible: int = 0
    to_copy: int = 0
    to_copy_bytes: int = 0
    unknown_size: int = 0  # photos to copy whose ACC record gives no size
    already: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    will_fail: Counter[str] = field(default_factory=Counter)
    pages: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "acc_project_id": self.mapping.acc_project_id,
            "builder_id": self.mapping.builder_id,
            "buildpass_project_id": self.mapping.buildpass_project_id,
            "found": self.found,
            "eligible": self.eligible,
            "to_copy": self.to_copy,
            "to_copy_bytes": self.to_copy_bytes,
            "to_copy_unknown_size": self.unknown_size,
            "already_in_buildpass": self.already,
            "skipped": sum(self.skipped.values()),
            "skipped_reasons": dict(sorted(self.skipped.items())),
            "will_fail": sum(self.will_fail.values()),
            "will_fail_reasons": dict(sorted(self.will_fail.items())),
        }


Progress = Callable[[ProjectMapping, int, int], None]  # (mapping, pages so far, records so far)


def plan_project(
    acc: AccClient,
    store: Store,
    config: PipelineConfig,
    mapping: ProjectMapping,
    window: Window,
    progress: Progress | None = None,
) -> ProjectPlan:
    """List the window the way extraction does and look each eligible photo up in the ledger.

    Reads only: ACC's listing (no signed URLs, no downloads) and the ledger's keys.
    """
    result = ProjectPlan(mapping)
    records = 0

    def on_page(count: int) -> None:
        nonlocal records
        result.pages += 1
        records += count
        if progress is not None:
            progress(mapping, result.pages, records)

    in_ledger = store.ledger_ids(mapping.builder_id, mapping.buildpass_project_id)
    listing = acc.iter_photos(mapping.acc_project_id, window.start, window.end, on_page=on_page)
    for photo, _, verdict in triage(listing, config.media_types):
        result.found += 1
        if verdict or photo is None:
            status, reason = verdict or UNREADABLE
            (result.skipped if status == PhotoStatus.SKIPPED else result.will_fail)[reason] += 1
            continue
        result.eligible += 1
        if photo.id in in_ledger and store.published(mapping.builder_id, mapping.buildpass_project_id, photo.id):
            result.already += 1
            continue
        result.to_copy += 1
        if not photo.size:  # ACC's 0 says nothing either
            result.unknown_size += 1
        else:
            result.to_copy_bytes += photo.size
    return result


def plan(
    acc: AccClient, store: Store, config: PipelineConfig, window: Window, progress: Progress | None = None
) -> list[ProjectPlan]:
    """A dry run of one window for every mapping: nothing staged, created or written.

    :raises ConfigError: the bucket is not usable, or a mapped ACC project is not visible
    """
    store.check_bucket()
    plans = []
    for i, mapping in enumerate(config.projects):
        missing = acc_mapping_problem(acc, i, mapping)
        if missing:
            raise ConfigError(missing)
        plans.append(plan_project(acc, store, config, mapping, window, progress))
    return plans


_TOTAL_KEYS = ("found", "eligible", "to_copy", "to_copy_bytes", "to_copy_unknown_size", "already_in_buildpass")


def plan_json(window: Window, plans: list[ProjectPlan]) -> dict[str, Any]:
    projects = [p.as_dict() for p in plans]
    totals = {k: sum(p[k] for p in projects) for k in (*_TOTAL_KEYS, "skipped", "will_fail")}
    return {
        "window": {"start": format_time(window.start), "end": format_time(window.end), "id": window.id},
        "dry_run": True,
        "projects": projects,
        "totals": totals,
    }
