"""The commands' text: tables, byte counts, and each command's rendering of its result."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from acc_buildpass.clients.acc import AccHub, AccProject
from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import Window
from acc_buildpass.pipeline import follow_edits as follow
from acc_buildpass.pipeline.dry_run import ProjectPlan, plan_json
from acc_buildpass.pipeline.projects import projects_json
from acc_buildpass.pipeline.replay import NOT_REPLAYABLE, STILL_FAILED
from acc_buildpass.pipeline.verify import PROBLEMS


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # not reached


def render_table(header: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    align = set(right)

    def fmt(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [str(c).rjust(w) if i in align else str(c).ljust(w) for i, (c, w) in pairs]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def render_plan(window: Window, plans: list[ProjectPlan]) -> str:
    data = plan_json(window, plans)
    header = ["ACC project", "BuildPass", "found", "to copy", "bytes", "already in BuildPass", "skipped", "will fail"]

    def row(label: str, target: str, p: dict[str, Any]) -> list[str]:
        unknown = p["to_copy_unknown_size"]
        size = human_bytes(p["to_copy_bytes"]) + (f" (+{unknown} of unknown size)" if unknown else "")
        return [
            label,
            target,
            str(p["found"]),
            str(p["to_copy"]),
            size,
            str(p["already_in_buildpass"]),
            str(p["skipped"]),
            str(p["will_fail"]),
        ]

    rows = [row(p["acc_project_id"], f"{p['builder_id']}/{p['buildpass_project_id']}", p) for p in data["projects"]]
    if len(rows) > 1:
        rows.append(row("total", "", data["totals"]))
    lines = [
        f"Dry run for photos created in [{data['window']['start']}, {data['window']['end']}): "
        "nothing is staged, created or written.",
        "",
        render_table(header, rows, right=range(2, 8)),
    ]
    reasons = []
    for p in data["projects"]:
        for kind in ("skipped_reasons", "will_fail_reasons"):
            for reason, count in p[kind].items():
                verb = "skipped" if kind == "skipped_reasons" else "will fail"
                reasons.append(f"  {p['acc_project_id']}: {count} {verb}: {reason}")
    if reasons:
        lines += ["", "Not copied, and why:", *reasons]
    return "\n".join(lines)


def render_projects(
    found: list[tuple[AccHub, list[AccProject]]], config: PipelineConfig | None, builders: dict[str, list[str]]
) -> str:
    data = projects_json(found, config, builders)
    lines: list[str] = []
    if not data["acc"]:
        lines.append("ACC: the signed-in user sees no hub.")
    for hub in data["acc"]:
        lines.append(f"ACC hub {hub['hub_name'] or '(no name)'} ({hub['hub_id']}): {len(hub['projects'])} project(s)")
        rows = [[p["acc_project_id"], p["name"], p["mapped_to"] or "-"] for p in hub["projects"]]
        if rows:
            lines += ["", render_table(["ACC project id", "name", "mapped to (builder/project)"], rows), ""]
    lines.append("BuildPass: " + data["buildpass"]["note"] + ".")
    if builders:
        for builder, projects in builders.items():
            lines.append(f"  builder {builder}: projects {', '.join(projects) if projects else '(none mapped yet)'}")
    else:
        lines.append("  no builder known yet: put your builder id in the Variable's mappings")
    return "\n".join(lines)


def render_replay(result: dict[str, Any]) -> str:
    window = result["window"]
    photos = result["photos"]
    lines = [f"Replay of the failed photos of window [{window['start']}, {window['end']}):", ""]
    if not photos:
        lines.append("The window's report lists no failed photo: nothing to replay.")
    else:
        rows = [[p["acc_project_id"], p["photo_id"], p["status"], p["reason"]] for p in photos]
        lines.append(render_table(["ACC project", "photo", "now", "reason"], rows))
    totals = result["totals"]
    lines += ["", ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in totals.items())]
    if totals[STILL_FAILED]:
        lines.append(f"{totals[STILL_FAILED]} photo(s) still failed: fix the cause and replay again.")
    if totals[NOT_REPLAYABLE]:
        lines.append(
            f"{totals[NOT_REPLAYABLE]} report entr(ies) name no photo to retry: run the DAG for the window again."
        )
    return "\n".join(lines)


def render_follow_edits(result: dict[str, Any]) -> str:
    """The summary as lines a log or a terminal shows as they are."""
    t = result["totals"]
    mode = " (dry run: nothing written)" if result["dry_run"] else ""
    lines = [
        f"Follow edits over photos created in [{result['since']}, {result['until']}){mode}, "
        f"delete policy {result['delete_policy']}",
        f"{t['looked_at']} copied photos looked at ({t['listed']} listed in ACC): "
        + (f"{t[follow.WOULD_PATCH]} to patch" if result["dry_run"] else f"{t[follow.PATCHED]} patched")
        + f", {t[follow.UNCHANGED]} unchanged, {t[follow.DELETED_IN_ACC]} deleted in ACC (reported), "
        + f"{t[follow.FAILED]} failed",
    ]
    for p in result["photos"]:
        what = p["status"] + (f" ({', '.join(p['changes'])})" if p["changes"] else "")
        target = f" → {p['buildpass_photo_id']}" if p["buildpass_photo_id"] else ""
        reason = f": {p['reason']}" if p["reason"] else ""
        lines.append(f"  {p['acc_project_id']} {p['photo_id']}{target} {what}{reason}")
    return "\n".join(lines)


def render_verify(result: dict[str, Any]) -> str:
    """The reconciliation: a row per project, then each finding with its reason."""
    window = result["window"]
    header = ["ACC project", "BuildPass", "eligible", "confirmed", *(p.replace("_", " ") for p in PROBLEMS)]
    rows = [
        [p["acc_project_id"], f"{p['builder_id']}/{p['buildpass_project_id']}"]
        + [str(p[k]) for k in ("eligible", "confirmed", *PROBLEMS)]
        for p in result["projects"]
    ]
    lines = [
        f"BuildPass read back for the photos created in [{window['start']}, {window['end']}):",
        "",
        render_table(header, rows, right=range(2, len(header))),
    ]
    for p in result["projects"]:
        if p["listing_incomplete"]:
            lines.append(f"{p['acc_project_id']}: BuildPass listing possibly incomplete: {p['listing_incomplete']}")
    if result["findings"]:
        lines.append("")
    for f in result["findings"]:
        target = f" ({', '.join(f['buildpass_photo_ids'])})" if f["buildpass_photo_ids"] else ""
        lines.append(f"  {f['acc_project_id']} {f['photo_id']}{target} {f['problem'].replace('_', ' ')}: {f['reason']}")
    cost = result["cost"]
    lines += [
        "",
        f"Read {cost['acc_pages']} ACC page(s), {cost['buildpass_listings']} BuildPass listing(s), "
        f"{cost['ledger_reads']} ledger entr(ies), {cost['staged_heads']} staged size(s).",
        "BuildPass matches ACC for this window." if result["ok"] else "BuildPass does not match ACC: see above.",
    ]
    return "\n".join(lines)
