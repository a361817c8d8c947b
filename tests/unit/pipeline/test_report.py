"""The report step over outcomes as the stage and publish tasks write them (JSON written before
the statuses became an enum included), in an in-memory S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import Batch, Window
from acc_buildpass.pipeline import report
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3

P1 = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
P2 = "7d1e2f30-0000-4000-8000-000000000002"
START = datetime(2026, 3, 2, tzinfo=UTC)
WINDOW = Window(START, START + timedelta(days=1))
CONFIG = PipelineConfig.from_variable(
    {
        "staging_bucket": "staging",
        "staging_prefix": "t",
        "projects": [
            {"acc_project_id": P1, "builder_id": "buil_demo", "buildpass_project_id": "proj_demo"},
            {"acc_project_id": P2, "builder_id": "buil_demo", "buildpass_project_id": "proj_two"},
        ],
    }
)


def outcome(photo_id: str, status: str, reason: str = "", reused: bool = False) -> dict[str, Any]:
    """One outcome exactly as the tasks have always written it."""
    return {
        "photo_id": photo_id,
        "status": status,
        "reason": reason,
        "size": 10,
        "sha256": "ab",
        "content_type": "image/jpeg",
        "reused": reused,
    }


def batch(index: int, count: int) -> Batch:
    return Batch.of(CONFIG.projects[0], WINDOW, index=index, label=f"b{index}", folder_id=None, parts=(), count=count)


def written(store: Store) -> Store:
    """Project 1 extracted into three batches: one staged and published, one never staged, one
    staged but never published. Project 2's extraction never finished."""
    put = store.put_json
    put(
        store.layout.extract_summary(WINDOW, P1),
        {
            "acc_project_id": P1,
            "builder_id": "buil_demo",
            "buildpass_project_id": "proj_demo",
            "found": 10,
            "eligible": 8,
            "skipped": [{"photo_id": "v1", "reason": "mediaType VIDEO not copied"}],
            "failed": [{"photo_id": "<no id>", "reason": "unreadable ACC record: invalid id None (missing)"}],
            "parts": [],
        },
    )
    stage = [
        outcome("a", "staged"),
        outcome("b", "staged", reused=True),
        outcome("c", "present"),
        outcome("d", "skipped", "deleted in ACC since extraction (gone)"),
        outcome("e", "failed", "ACC served an empty file (0 bytes)"),
        outcome("f", "staged"),
        outcome("g", "staged"),
    ]
    publish = [
        outcome("a", "created"),
        outcome("b", "present"),
        outcome("f", "failed", "BuildPass rejected the photo: no"),
    ]
    put(store.layout.batch_outcome(WINDOW, 0, "stage"), stage)
    put(store.layout.batch_outcome(WINDOW, 0, "publish"), publish)
    put(store.layout.batch_outcome(WINDOW, 2, "stage"), [outcome("h", "staged")])
    return store


def test_the_report_reconciles_every_photo_and_is_written_as_before() -> None:
    store = written(Store(MemoryS3(), Layout("staging", "t")))
    result = report.build(store, CONFIG, WINDOW, [batch(0, 7), batch(1, 4), batch(2, 1)], run_id="manual__1")
    [one, two] = result["projects"]
    assert one == {
        "acc_project_id": P1,
        "buildpass_project_id": "proj_demo",
        "found": 10,
        "eligible": 8,
        "staged": 5,
        "downloaded": 4,
        "created": 1,
        "present": 2,
        "skipped": {"mediaType VIDEO not copied": 1, "deleted in ACC since extraction (gone)": 1},
        "failed": [
            {"photo_id": "<no id>", "reason": "unreadable ACC record: invalid id None (missing)"},
            {"photo_id": "e", "reason": "ACC served an empty file (0 bytes)"},
            {"photo_id": "f", "reason": "BuildPass rejected the photo: no"},
            {"photo_id": "g", "reason": "missing from the publish outcome"},
            {"photo_id": "batch b1", "reason": "staging of 4 photos did not finish"},
            {"photo_id": "h", "reason": "publishing did not finish"},
        ],
    }
    assert two["failed"] == [{"photo_id": "*", "reason": "extraction did not finish for this project"}]
    assert result["totals"] == {
        "found": 10,
        "eligible": 8,
        "staged": 5,
        "downloaded": 4,
        "created": 1,
        "present": 2,
        "skipped": 2,
        "failed": 7,
    }
    raw = store.s3.objects[f"staging/{store.layout.report(WINDOW, 'json')}"].body  # type: ignore[attr-defined]
    assert raw == json.dumps(result, indent=1, ensure_ascii=False).encode()
    assert json.loads(raw)["window"] == {
        "start": "2026-03-02T00:00:00+00:00",
        "end": "2026-03-03T00:00:00+00:00",
        "id": "20260302T000000Z--20260303T000000Z",
    }
    md = store.s3.objects[f"staging/{store.layout.report(WINDOW, 'md')}"].body.decode()  # type: ignore[attr-defined]
    assert md == report.render(result)
    assert f"| {P1} | proj_demo | 10 | 2 | 8 | 4 | 1 | 2 | 6 |" in md
    assert "| TOTAL |  | 10 | 2 | 8 | 4 | 1 | 2 | 7 |" in md
    assert f"- skipped in {P1}: 1 x mediaType VIDEO not copied" in md
    assert "FAILED (7):" in md and f"- {P2} photo *: extraction did not finish for this project" in md
    assert report.failures(result)[1:3] == [
        "e: ACC served an empty file (0 bytes)",
        "f: BuildPass rejected the photo: no",
    ]


def test_a_report_json_written_before_renders_and_lists_its_failures() -> None:
    old = json.loads(
        '{"window": {"start": "2026-03-02T00:00:00+00:00", "end": "2026-03-03T00:00:00+00:00", "id": "w"},'
        ' "run_id": null, "publish_mode": "bulk", "batches": 1, "projects": [{"acc_project_id": "p",'
        ' "buildpass_project_id": "q", "found": 2, "eligible": 2, "staged": 2, "downloaded": 2, "created": 1,'
        ' "present": 0, "skipped": {}, "failed": [{"photo_id": "x", "reason": "why"}]}], "totals": {"found": 2,'
        ' "eligible": 2, "staged": 2, "downloaded": 2, "created": 1, "present": 0, "skipped": 0, "failed": 1}}'
    )
    text = report.render(old)
    assert "(bulk mode, 1 batches)" in text and "| p | q | 2 | 0 | 2 | 2 | 1 | 0 | 1 |" in text
    assert text.endswith("FAILED (1):\n- p photo x: why\n")
    assert report.failures(old) == ["x: why"]
