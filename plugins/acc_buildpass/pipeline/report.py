"""Report: reconcile each project of a window from the outcomes every step wrote."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import Batch, Outcome, PhotoStatus, Window
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)


def _project_row(store: Store, window: Window, acc_project_id: str, batches: list[Batch]) -> dict[str, Any]:
    summary = store.get_json(store.layout.extract_summary(window, acc_project_id))
    row: dict[str, Any] = {
        "acc_project_id": acc_project_id,
        "buildpass_project_id": batches[0].buildpass_project_id if batches else None,
        "found": 0,
        "eligible": 0,
        "staged": 0,
        "downloaded": 0,
        "created": 0,
        "present": 0,
        "skipped": Counter(),
        "failed": [],
    }
    if summary is None:
        _failed(row, "*", "extraction did not finish for this project")
        return row
    row["buildpass_project_id"] = summary.get("buildpass_project_id")
    row["found"] = summary["found"]
    row["eligible"] = summary["eligible"]
    row["skipped"].update(s["reason"] for s in summary["skipped"])
    row["failed"] += summary["failed"]
    for batch in batches:
        stage = store.get_json(store.layout.batch_outcome(window, batch.index, "stage"))
        publish = store.get_json(store.layout.batch_outcome(window, batch.index, "publish"))
        if stage is None:
            _failed(row, f"batch {batch.label}", f"staging of {batch.count} photos did not finish")
            continue
        published = {o.photo_id: o for o in (Outcome.from_json(p) for p in publish or [])}
        unpublished = "publishing did not finish" if publish is None else "missing from the publish outcome"
        for outcome in (Outcome.from_json(o) for o in stage):
            _count(row, outcome, published.get(outcome.photo_id), unpublished)
    row["skipped"] = dict(row["skipped"])
    return row


def _count(row: dict[str, Any], staged: Outcome, final: Outcome | None, unpublished: str) -> None:
    """Count one photo of a batch: by its stage outcome, or, when it was staged, its publish outcome.

    :param unpublished: the reason given when a staged photo has no publish outcome
    """
    if staged.status == PhotoStatus.SKIPPED:
        row["skipped"][staged.reason] += 1
    elif staged.status in (PhotoStatus.FAILED, PhotoStatus.PRESENT):
        _tally(row, staged)
    else:
        row["staged"] += 1
        row["downloaded"] += 0 if staged.reused else 1
        if final is None:
            _failed(row, staged.photo_id, unpublished)
        else:
            _tally(row, final)


def _tally(row: dict[str, Any], settled: Outcome) -> None:
    """A photo's last word: failed (with its reason), created, or already present."""
    if settled.status == PhotoStatus.FAILED:
        _failed(row, settled.photo_id, settled.reason)
    elif settled.status == PhotoStatus.CREATED:
        row["created"] += 1
    else:
        row["present"] += 1


def _failed(row: dict[str, Any], photo_id: str, reason: str) -> None:
    row["failed"].append({"photo_id": photo_id, "reason": reason})


def build(
    store: Store, config: PipelineConfig, window: Window, batches: list[Batch], run_id: str | None = None
) -> dict[str, Any]:
    """Reconcile, write ``report.json`` and ``report.md`` beside the window's manifests.

    :param run_id: the DAG run reconciling (a later run of the same window replaces the report)
    """
    rows = [
        _project_row(store, window, m.acc_project_id, [b for b in batches if b.acc_project_id == m.acc_project_id])
        for m in config.projects
    ]
    totals = {k: sum(r[k] for r in rows) for k in ("found", "eligible", "staged", "downloaded", "created", "present")}
    totals["skipped"] = sum(sum(r["skipped"].values()) for r in rows)
    totals["failed"] = sum(len(r["failed"]) for r in rows)
    report = {
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat(), "id": window.id},
        "run_id": run_id,
        "publish_mode": config.publish_mode,
        "batches": len(batches),
        "projects": rows,
        "totals": totals,
    }
    store.put_json(store.layout.report(window, "json"), report)
    store.put_text(store.layout.report(window, "md"), render(report))
    return report


def render(report: dict[str, Any]) -> str:
    """The report as a Markdown table, readable in a task log as it is."""
    window = report["window"]
    lines = [
        f"ACC → BuildPass, window {window['start']} to {window['end']} ({report['publish_mode']} mode, "
        f"{report['batches']} batches)",
        "",
        "| ACC project | BuildPass project | found | skipped | eligible | downloaded | created "
        "| already present | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["projects"] + [{"acc_project_id": "TOTAL", "buildpass_project_id": "", **report["totals"]}]:
        skipped = r["skipped"] if isinstance(r["skipped"], int) else sum(r["skipped"].values())
        failed = r["failed"] if isinstance(r["failed"], int) else len(r["failed"])
        lines.append(
            f"| {r['acc_project_id']} | {r['buildpass_project_id'] or ''} | {r['found']} | {skipped} | "
            f"{r['eligible']} | {r['downloaded']} | {r['created']} | {r['present']} | {failed} |"
        )
    for r in report["projects"]:
        for reason, count in sorted(r["skipped"].items()):
            lines.append(f"- skipped in {r['acc_project_id']}: {count} x {reason}")
    failures = [(r["acc_project_id"], f) for r in report["projects"] for f in r["failed"]]
    if failures:
        lines += ["", f"FAILED ({len(failures)}):"]
        lines += [f"- {project} photo {f['photo_id']}: {f['reason']}" for project, f in failures]
    return "\n".join(lines) + "\n"


def failures(report: dict[str, Any]) -> list[str]:
    return [f"{f['photo_id']}: {f['reason']}" for r in report["projects"] for f in r["failed"]]
