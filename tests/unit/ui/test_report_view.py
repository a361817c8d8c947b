"""The report page's HTML and the plugin that serves it, without a server (see tests/ui for one)."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from importlib.metadata import entry_points
from typing import Any

import pytest
from acc_buildpass.settings import OPERATIONS_DAG_ID
from acc_buildpass.ui.report_view import DAG_ID, Located, render

HOSTILE = '"><img src=x onerror=alert(1)><script>alert(2)</script>&amp;'


def report(**overrides: Any) -> dict[str, Any]:
    return {
        "window": {"start": "2026-03-01T00:00:00+00:00", "end": "2026-03-02T00:00:00+00:00", "id": "w"},
        "run_id": "run-1",
        "publish_mode": "bulk",
        "batches": 3,
        "projects": [
            {
                "acc_project_id": "p-one",
                "buildpass_project_id": "proj_a",
                "found": 10,
                "eligible": 7,
                "staged": 6,
                "downloaded": 5,
                "created": 4,
                "present": 2,
                "skipped": {"deleted in ACC": 2, "mediaType VIDEO not copied": 1},
                "failed": [{"photo_id": "ph-9", "reason": "BuildPass rejected the photo: too dark"}],
            },
            {
                "acc_project_id": "p-two",
                "buildpass_project_id": "proj_b",
                "found": 0,
                "eligible": 0,
                "staged": 0,
                "downloaded": 0,
                "created": 0,
                "present": 0,
                "skipped": {},
                "failed": [],
            },
        ],
        "totals": {
            "found": 10,
            "eligible": 7,
            "staged": 6,
            "downloaded": 5,
            "created": 4,
            "present": 2,
            "skipped": 3,
            "failed": 1,
        },
        **overrides,
    }


class Tables(HTMLParser):
    """Elements seen, and the text of each table's cells, row by row, by table id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._table = ""
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self._table = dict(attrs).get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr":
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def test_the_page_shows_each_project_its_totals_reasons_and_failures() -> None:
    html = render(DAG_ID, "run-1", "failed", Located("s3://b/k/report.json", report=report()))
    tables = Tables(html).tables
    header, one, two, total = tables["projects"]
    assert header == [
        "ACC project",
        "BuildPass project",
        "found",
        "skipped",
        "eligible",
        "downloaded",
        "created",
        "already present",
        "failed",
    ]
    assert one == ["p-one", "proj_a", "10", "3", "7", "5", "4", "2", "1"]
    assert two == ["p-two", "proj_b", "0", "0", "0", "0", "0", "0", "0"]
    assert total == ["Total", "", "10", "3", "7", "5", "4", "2", "1"]
    assert tables["skipped"][1:] == [["p-one", "deleted in ACC", "2"], ["p-one", "mediaType VIDEO not copied", "1"]]
    assert tables["failed"][1:] == [["p-one", "ph-9", "BuildPass rejected the photo: too dark"]]
    assert "1 photo(s) could not be copied" in html and "s3://b/k/report.json" in html
    assert 'id="superseded"' not in html


def test_a_clean_run_says_so_and_lists_no_failures() -> None:
    clean = report(totals={**report()["totals"], "failed": 0})
    clean["projects"][0]["failed"] = []
    html = render(DAG_ID, "run-1", "success", Located("s3://b/k", report=clean))
    assert "Every eligible photo is in BuildPass (7)" in html
    assert "failed" not in Tables(html).tables


def test_every_value_is_escaped() -> None:
    hostile = report(window={"start": HOSTILE, "end": HOSTILE}, publish_mode=HOSTILE, batches=HOSTILE)
    hostile["projects"][0].update(acc_project_id=HOSTILE, buildpass_project_id=HOSTILE)
    hostile["projects"][0]["skipped"] = {HOSTILE: 1}
    hostile["projects"][0]["failed"] = [{"photo_id": HOSTILE, "reason": HOSTILE}]
    for located in (Located(HOSTILE, report=hostile), Located(HOSTILE, problem=HOSTILE)):
        html = render(HOSTILE, HOSTILE, HOSTILE, located)
        parsed = Tables(html)
        assert "img" not in parsed.tags and "script" not in parsed.tags
        assert "<img" not in html and "<script" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html and "&amp;amp;" in html
    failed = Tables(render(DAG_ID, "r", "failed", Located("", report=hostile))).tables["failed"]
    assert failed[1] == [HOSTILE, HOSTILE, HOSTILE]  # shown as the text it is


def test_a_report_written_by_a_later_run_of_the_window_says_so() -> None:
    html = render(DAG_ID, "run-0", "failed", Located("s3://b/k", report=report(run_id="run-7")))
    assert re.search(r'id="superseded">[^<]*by run run-7', html)


def test_the_plugin_is_registered_and_links_the_page_from_each_run() -> None:
    (entry,) = [e for e in entry_points(group="airflow.plugins") if e.value.startswith("acc_buildpass")]
    plugin = entry.load()
    (app,) = plugin.fastapi_apps
    (view,) = plugin.external_views
    assert view["destination"] == "dag_run" and view["url_route"]
    # Relative to Airflow's base URL (works behind a path prefix), and served by the plugin's app.
    assert not view["href"].startswith("/") and view["href"].startswith(app["url_prefix"].lstrip("/") + "/")
    assert view["href"].endswith("/report/{DAG_ID}/{RUN_ID}")


def test_loading_the_plugin_imports_no_web_stack() -> None:
    """Every task process loads plugins: the api-server's modules come with the first request only."""
    probe = (
        "import sys, acc_buildpass.ui.plugin; "
        "print([m for m in ('acc_buildpass.ui.report_view', 'fastapi', 'airflow.api_fastapi') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


# -- runs of the operations DAG: a plan, a replay ------------------------------------------------


def a_plan(**overrides: Any) -> dict[str, Any]:
    """A plan as the operations DAG writes it (``operations.plan_json`` and the run id)."""
    project = {
        "acc_project_id": "p-one",
        "builder_id": "buil_a",
        "buildpass_project_id": "proj_a",
        "found": 12,
        "eligible": 9,
        "to_copy": 6,
        "to_copy_bytes": 6_000_000,
        "to_copy_unknown_size": 0,
        "already_in_buildpass": 3,
        "skipped": 3,
        "skipped_reasons": {"deleted in ACC": 2, "mediaType VIDEO not copied": 1},
        "will_fail": 0,
        "will_fail_reasons": {},
    }
    return {
        "window": {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "id": "w"},
        "dry_run": True,
        "projects": [project],
        "totals": {k: v for k, v in project.items() if isinstance(v, int)},
        "run_id": "run-1",
        **overrides,
    }


def test_a_plan_run_shows_its_counts_per_project_and_why_photos_are_not_copied() -> None:
    html = render(OPERATIONS_DAG_ID, "run-1", "success", Located("s3://b/k/plan.json", report=a_plan()))
    tables = Tables(html).tables
    header, row, total = tables["plan"]
    assert header[:4] == ["ACC project", "BuildPass", "found", "to copy"] and "already in BuildPass" in header
    assert row == ["p-one", "buil_a/proj_a", "12", "6", "5.7 MiB", "3", "3", "0"]
    assert total[2:] == row[2:]
    assert tables["reasons"][1:] == [
        ["p-one", "skipped", "deleted in ACC", "2"],
        ["p-one", "skipped", "mediaType VIDEO not copied", "1"],
    ]
    assert "6 photo(s) to copy, 3 already in BuildPass" in html and "nothing was staged" in html
    assert 'id="superseded"' not in html
    later = render(OPERATIONS_DAG_ID, "run-1", "success", Located("", report=a_plan(run_id="run-2")))
    assert re.search(r'id="superseded">[^<]*by run run-2', later)


def test_a_replay_run_shows_what_came_of_each_photo() -> None:
    result = {
        "window": {"start": "2026-03-01T00:00:00Z", "end": "2026-03-02T00:00:00Z", "id": "w"},
        "replayed_at": "2026-03-03T10:00:00Z",
        "photos": [
            {"acc_project_id": "p-one", "photo_id": "ph-1", "status": "created", "reason": ""},
            {"acc_project_id": "p-one", "photo_id": HOSTILE, "status": "failed", "reason": HOSTILE},
        ],
        "totals": {"created": 1, "present": 0, "failed": 1, "deleted": 0, "skipped": 0, "not_replayable": 0},
    }
    html = render(OPERATIONS_DAG_ID, "run-1", "failed", Located("s3://b/k/report-replay.json", report=result))
    parsed = Tables(html)
    assert parsed.tables["photos"][1:] == [["p-one", "ph-1", "created", ""], ["p-one", HOSTILE, "failed", HOSTILE]]
    assert "script" not in parsed.tags and "<img" not in html
    assert re.search(r'class="bad" id="verdict">1 photo\(s\) or entries still not copied', html)
    assert "1 created, 0 present, 1 failed" in html


def test_an_operations_run_finds_its_report_by_action(monkeypatch: pytest.MonkeyPatch) -> None:
    from acc_buildpass.ui.report_view import locate_operation

    monkeypatch.setenv(
        "AIRFLOW_VAR_ACC_BUILDPASS_CONFIG",
        '{"staging_bucket": "staging", "projects": [{"acc_project_id": "p", "builder_id": "b", '
        '"buildpass_project_id": "x"}]}',
    )
    check = locate_operation({"action": "check"})
    assert check.report is None and "log of the task operate" in (check.problem or "")
    assert "log of the task operate" in (locate_operation({}).problem or "")  # the form's default: check
    no_window = locate_operation({"action": "plan"})
    assert no_window.report is None and "no window in the run conf" in (no_window.problem or "")
