"""What an operator reads: byte counts, tables, and each command's rendering of a small result.

The results are literal dicts in the shapes stored in report-replay.json and printed by
``--json``, so a change to those shapes shows up here too.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from acc_buildpass.cli import render
from acc_buildpass.clients.acc import AccHub, AccProject
from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import ProjectMapping, Window
from acc_buildpass.pipeline.dry_run import ProjectPlan

WINDOW = Window(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
SPAN = "[2026-03-02T00:00:00Z, 2026-03-03T00:00:00Z)"
TOWER_A, TOWER_B = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8", "7d1e2f30-0000-4000-8000-000000000002"


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * 1024**3 + 1024**3 // 2, "3.5 GiB"),
        (1024**4, "1.0 TiB"),
        (2048 * 1024**4, "2048.0 TiB"),  # the largest unit stays
    ],
)
def test_human_bytes(count: int, shown: str) -> None:
    assert render.human_bytes(count) == shown


def test_a_table_aligns_its_columns_and_right_aligns_the_counts() -> None:
    table = render.render_table(["project", "photos", "note"], [["a", "5", "ok"], ["tower-b", "120", ""]], right=[1])
    assert table.splitlines() == [
        "project  photos  note",
        "-------  ------  ----",
        "a             5  ok",
        "tower-b     120",  # no trailing blanks
    ]


def plan_of(acc_project_id: str, buildpass_project_id: str, **counts: Any) -> ProjectPlan:
    return ProjectPlan(ProjectMapping(acc_project_id, "buil_demo", buildpass_project_id), **counts)


def test_plan_shows_each_project_a_total_and_why_photos_are_not_copied() -> None:
    tower_a = plan_of(
        TOWER_A,
        "proj_a",
        found=5,
        eligible=4,
        to_copy=3,
        to_copy_bytes=3 * 1024**2,
        unknown_size=1,
        already=1,
        skipped=Counter({"mediaType 'video' is not copied": 1}),
        will_fail=Counter({"no file name": 1}),
    )
    tower_b = plan_of(TOWER_B, "proj_b", found=2, eligible=2, to_copy=2, to_copy_bytes=2048)
    lines = render.render_plan(WINDOW, [tower_a, tower_b]).splitlines()
    assert lines[0] == f"Dry run for photos created in {SPAN}: nothing is staged, created or written."
    header = ["ACC project", "BuildPass", "found", "to copy", "bytes", "already in BuildPass", "skipped", "will fail"]
    assert re.split(r" {2,}", lines[2]) == header
    rows = {line.split()[0]: line.split() for line in lines[4:7]}
    assert rows[TOWER_A][:6] == [TOWER_A, "buil_demo/proj_a", "5", "3", "3.0", "MiB"]
    assert "3.0 MiB (+1 of unknown size)" in lines[4]
    assert rows[TOWER_B] == [TOWER_B, "buil_demo/proj_b", "2", "2", "2.0", "KiB", "0", "0", "0"]
    assert rows["total"][:3] == ["total", "7", "5"] and rows["total"][-3:] == ["1", "1", "1"]
    assert lines[8:] == [
        "Not copied, and why:",
        f"  {TOWER_A}: 1 skipped: mediaType 'video' is not copied",
        f"  {TOWER_A}: 1 will fail: no file name",
    ]


def test_plan_of_one_project_has_no_total_row_and_no_reasons_when_all_is_copied() -> None:
    lines = render.render_plan(WINDOW, [plan_of(TOWER_B, "proj_b", found=2, eligible=2, to_copy=2)]).splitlines()
    assert len(lines) == 5  # title, blank, header, rule, the one row
    assert lines[4].split() == [TOWER_B, "buil_demo/proj_b", "2", "2", "0", "B", "0", "0", "0"]
    assert not any(line.startswith("total") for line in lines)


def replay_result(photos: list[dict[str, str]], **totals: int) -> dict[str, Any]:
    statuses = ("created", "present", "failed", "deleted", "skipped", "not_replayable")
    return {
        "window": {"start": "2026-03-02T00:00:00Z", "end": "2026-03-03T00:00:00Z", "id": WINDOW.id},
        "photos": photos,
        "totals": {status: totals.get(status, 0) for status in statuses},
    }


def photo(photo_id: str, status: str, reason: str = "", project: str = TOWER_A) -> dict[str, str]:
    return {"acc_project_id": project, "photo_id": photo_id, "status": status, "reason": reason, "reported_reason": ""}


def test_replay_lists_each_photo_the_totals_and_what_to_do_next() -> None:
    result = replay_result(
        [
            photo("ph-1", "created"),
            photo("ph-2", "failed", "HTTP 413: the photo is too large"),
            photo("*", "not_replayable", "the report names no photo", project="*"),
        ],
        created=1,
        failed=1,
        not_replayable=1,
    )
    lines = render.render_replay(result).splitlines()
    assert lines[0] == f"Replay of the failed photos of window {SPAN}:"
    assert lines[2].split() == ["ACC", "project", "photo", "now", "reason"]
    assert lines[4].split() == [TOWER_A, "ph-1", "created"]
    assert lines[5].split(None, 3) == [TOWER_A, "ph-2", "failed", "HTTP 413: the photo is too large"]
    assert lines[-3:] == [
        "1 created, 0 present, 1 failed, 0 deleted, 0 skipped, 1 not replayable",
        "1 photo(s) still failed: fix the cause and replay again.",
        "1 report entr(ies) name no photo to retry: run the DAG for the window again.",
    ]


def test_replay_of_a_clean_window_says_there_is_nothing_to_replay() -> None:
    lines = render.render_replay(replay_result([])).splitlines()
    assert "The window's report lists no failed photo: nothing to replay." in lines
    assert lines[-1] == "0 created, 0 present, 0 failed, 0 deleted, 0 skipped, 0 not replayable"
    assert not any("still failed" in line or "run the DAG" in line for line in lines)


def test_replay_that_got_everything_across_gives_no_hint() -> None:
    lines = render.render_replay(
        replay_result([photo("ph-1", "created"), photo("ph-2", "present")], created=1, present=1)
    )
    assert lines.splitlines()[-1] == "1 created, 1 present, 0 failed, 0 deleted, 0 skipped, 0 not replayable"


HUB = AccHub("b.4f1c", "Acme Builders")


def test_projects_shows_each_hub_s_projects_and_where_they_are_mapped() -> None:
    config = PipelineConfig.from_variable(
        {
            "staging_bucket": "staging",
            "projects": [{"acc_project_id": TOWER_A, "builder_id": "buil_demo", "buildpass_project_id": "proj_a"}],
        }
    )
    found = [(HUB, [AccProject(TOWER_A, "Tower A", HUB.id), AccProject(TOWER_B, "Tower B", HUB.id)])]
    lines = render.render_projects(found, config, {"buil_demo": ["proj_a"]}).splitlines()
    assert lines[0] == "ACC hub Acme Builders (b.4f1c): 2 project(s)"
    assert re.split(r" {2,}", lines[2]) == ["ACC project id", "name", "mapped to (builder/project)"]
    assert lines[4].split() == [TOWER_A, "Tower", "A", "buil_demo/proj_a"]
    assert lines[5].split() == [TOWER_B, "Tower", "B", "-"]
    assert lines[-2].startswith("BuildPass: no documented endpoint lists a builder's projects")
    assert lines[-1] == "  builder buil_demo: projects proj_a"


def test_projects_without_a_hub_or_a_builder_says_what_to_do() -> None:
    lines = render.render_projects([], None, {}).splitlines()
    assert lines[0] == "ACC: the signed-in user sees no hub."
    assert lines[-1] == "  no builder known yet: put your builder id in the Variable's mappings"
    unnamed = render.render_projects([(AccHub("b.1", ""), [])], None, {"buil_x": []}).splitlines()
    assert unnamed[0] == "ACC hub (no name) (b.1): 0 project(s)"
    assert unnamed[-1] == "  builder buil_x: projects (none mapped yet)"


def follow_result(*, dry_run: bool, **totals: int) -> dict[str, Any]:
    counts = {"listed": 4, "looked_at": 3, "patched": 0, "would_patch": 0, "unchanged": 1, "deleted_in_acc": 1}
    return {
        "since": "2026-02-24T00:00:00Z",
        "until": "2026-03-03T00:00:00Z",
        "dry_run": dry_run,
        "delete_policy": "report",
        "totals": {**counts, "failed": 0, **totals},
        "photos": [
            {
                "acc_project_id": TOWER_A,
                "photo_id": "ph-1",
                "status": "would_patch" if dry_run else "patched",
                "buildpass_photo_id": "bp-9",
                "changes": ["title", "takenAt"],
                "reason": "",
            },
            {
                "acc_project_id": TOWER_A,
                "photo_id": "ph-2",
                "status": "deleted_in_acc",
                "buildpass_photo_id": None,
                "changes": [],
                "reason": "deleted in ACC; left in BuildPass",
            },
        ],
    }


def test_follow_edits_totals_then_one_line_a_photo() -> None:
    lines = render.render_follow_edits(follow_result(dry_run=False, patched=1)).splitlines()
    assert lines == [
        "Follow edits over photos created in [2026-02-24T00:00:00Z, 2026-03-03T00:00:00Z), delete policy report",
        "3 copied photos looked at (4 listed in ACC): 1 patched, 1 unchanged, 1 deleted in ACC (reported), 0 failed",
        f"  {TOWER_A} ph-1 → bp-9 patched (title, takenAt)",
        f"  {TOWER_A} ph-2 deleted_in_acc: deleted in ACC; left in BuildPass",
    ]


def test_a_dry_run_of_follow_edits_says_nothing_was_written_and_counts_what_it_would_patch() -> None:
    lines = render.render_follow_edits(follow_result(dry_run=True, would_patch=1, failed=2)).splitlines()
    assert lines[0].endswith("(dry run: nothing written), delete policy report")
    assert lines[1] == (
        "3 copied photos looked at (4 listed in ACC): 1 to patch, 1 unchanged, 1 deleted in ACC (reported), 2 failed"
    )
    assert lines[2] == f"  {TOWER_A} ph-1 → bp-9 would_patch (title, takenAt)"


def verify_result(*findings: Any, incomplete: str | None = None) -> dict[str, Any]:
    from acc_buildpass.pipeline.verify import ProjectVerify, verify_json

    project = ProjectVerify(
        ProjectMapping(TOWER_A, "buil_x", "proj_x"), listed=5, eligible=4, confirmed=4 - len(findings)
    )
    project.findings.extend(findings)
    project.listing_incomplete = incomplete
    project.cost.update(acc_pages=1, buildpass_listings=1, ledger_listings=1, ledger_reads=4)
    return verify_json(WINDOW, [project])


def test_verify_of_a_matching_window_shows_the_counts_what_it_read_and_says_it_matches() -> None:
    lines = render.render_verify(verify_result()).splitlines()
    assert lines[0] == f"BuildPass read back for the photos created in {SPAN}:"
    assert lines[2].split() == [
        "ACC", "project", "BuildPass", "eligible", "confirmed", "absent", "doubled", "wrong", "size", "unlinked",
        "not", "linkable",
    ]  # fmt: skip
    assert lines[4].split() == [TOWER_A, "buil_x/proj_x", "4", "4", "0", "0", "0", "0", "0"]
    assert lines[-2:] == [
        "Read 1 ACC page(s), 1 BuildPass listing(s), 4 ledger entr(ies), 0 staged size(s).",
        "BuildPass matches ACC for this window.",
    ]


def test_verify_lists_each_finding_and_a_listing_that_may_be_capped() -> None:
    from acc_buildpass.pipeline.verify import Finding

    result = verify_result(
        Finding("absent", TOWER_A, "ph-1", reason="never copied"),
        Finding("doubled", TOWER_A, "ph-2", ("bp-1", "bp-2"), "in BuildPass 2 times"),
        incomplete="exactly 100 photos, a round number: BuildPass may cap its listing",
    )
    assert not result["ok"] and result["totals"]["listing_incomplete"] == 1
    lines = render.render_verify(result).splitlines()
    assert f"{TOWER_A}: BuildPass listing possibly incomplete: exactly 100 photos, a round number: " in "\n".join(lines)
    assert f"  {TOWER_A} ph-1 absent: never copied" in lines
    assert f"  {TOWER_A} ph-2 (bp-1, bp-2) doubled: in BuildPass 2 times" in lines
    assert lines[-1] == "BuildPass does not match ACC: see above."
