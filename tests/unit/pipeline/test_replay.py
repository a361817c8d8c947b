"""Replay against both emulators and an in-memory S3, from a window report written as the DAG
has always written it: each failed photo is retried once, and what came of it is reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sandbox
from acc_buildpass.errors import ConfigError
from acc_buildpass.models import ReplayStatus
from acc_buildpass.pipeline import replay as replay_step
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3, StoredObject
from tests.unit.pipeline.emulated import (
    PROJECT,
    WINDOW,
    acc_client,
    acc_truth,
    admin,
    buildpass_client,
    pipeline_config,
    route_counts,
)

UNMAPPED = "7d1e2f30-0000-4000-8000-000000000002"


def old_report(rows: list[dict[str, Any]]) -> bytes:
    """A report.json as the report task writes it (the fields replay reads, and the rest)."""
    return json.dumps(
        {
            "window": {"start": WINDOW.start.isoformat(), "end": WINDOW.end.isoformat(), "id": WINDOW.id},
            "run_id": "scheduled__2024-01-31",
            "publish_mode": "bulk",
            "batches": 1,
            "projects": rows,
            "totals": {},
        },
        indent=1,
    ).encode()


def row(project: str, failed: list[tuple[str, str]]) -> dict[str, Any]:
    return {"acc_project_id": project, "failed": [{"photo_id": i, "reason": r} for i, r in failed]}


def test_each_failed_photo_is_retried_once_and_reported(box: sandbox.Sandbox, tmp_path: Path) -> None:
    acc, bp, config = acc_client(box, tmp_path), buildpass_client(box), pipeline_config()
    store = Store(MemoryS3(), Layout("staging", "t"))
    admin(box.acc_url, "/seed", {"project_id": PROJECT, "count": 5, "videos": 1, "start": "2024-01-01T00:00:00"})
    truth = acc_truth(box)
    video = next(i for i, p in truth.items() if p["mediaType"] == "VIDEO")
    good, deleted, bad, fine = (i for i in truth if i != video)
    admin(box.acc_url, f"/photos/{deleted}/delete", {})
    admin(box.acc_url, f"/photos/{bad}/behaviour", {"download": "notimage"})
    store.s3.objects[f"staging/{store.layout.report(WINDOW, 'json')}"] = StoredObject(
        old_report(
            [
                row(
                    PROJECT,
                    [
                        (good, "download failed after retries: 503"),
                        (fine, "bulk-upsert failed after retries: 503"),
                        (good, "listed twice in the report"),  # retried once
                        (deleted, "download failed after retries: 503"),
                        (video, "bulk-upsert failed after retries: 503"),
                        (bad, "download failed after retries: 503"),
                        ("ghost-1", "unreadable ACC record: createdAt: not a timestamp"),
                        ("ghost-2", "download failed after retries: 503"),
                        ("*", "extraction did not finish for this project"),
                        ("batch test 2/2", "staging of 3 photos did not finish"),
                    ],
                ),
                row(UNMAPPED, [("p-1", "why")]),
                row("other", []),
            ]
        )
    )
    seen: list[tuple[int, int, str]] = []
    result = replay_step.replay(acc, bp, store, config, WINDOW, lambda *a: seen.append(a))

    by_photo = {(p["photo_id"], p["status"]) for p in result["photos"]}
    assert by_photo == {
        (good, "created"),
        (fine, "created"),
        (deleted, "deleted"),
        (video, "skipped"),
        (bad, "failed"),
        ("ghost-1", "failed"),
        ("ghost-2", "deleted"),
        ("*", "not_replayable"),
        ("batch test 2/2", "not_replayable"),
        ("p-1", "not_replayable"),
    }
    reasons = {p["photo_id"]: (p["reason"], p["reported_reason"]) for p in result["photos"]}
    assert reasons["ghost-1"][0] == "ACC did not return a readable record for it"
    assert reasons["ghost-2"] == ("no longer in ACC", "download failed after retries: 503")
    assert reasons["p-1"][0] == "the project is no longer mapped in the Variable"
    assert reasons[good] == ("", "download failed after retries: 503")  # the first reason given
    assert reasons[bad][0].startswith("file is not an image")
    assert list(result["totals"].items()) == [
        ("created", 2),
        ("present", 0),
        ("failed", 2),
        ("deleted", 2),
        ("skipped", 1),
        ("not_replayable", 3),
    ]
    assert list(result["photos"][0]) == ["acc_project_id", "photo_id", "status", "reason", "reported_reason"]
    assert result["source_report"] == {"key": store.layout.report(WINDOW, "json"), "run_id": "scheduled__2024-01-31"}
    assert result["only_projects"] is None and result["publish_mode"] == "bulk"
    assert seen == [(0, 3, "replay 36c0838c→proj_demo 1/1: 3 photo(s)")]
    assert not replay_step.replay_ok(result)
    written = store.get_json(store.layout.replay_report(WINDOW, "json"))
    assert written == json.loads(json.dumps(result))
    assert store.get_json(store.layout.batch_outcome(WINDOW, replay_step.REPLAY_BATCH_BASE, "stage")) is not None

    # Again: the photos created are now present, and nothing reaches BuildPass twice.
    upserts = route_counts(box.buildpass_url)["bulk-upsert"]
    again = replay_step.replay(acc, bp, store, config, WINDOW, only={PROJECT})
    assert {p["photo_id"]: p["status"] for p in again["photos"]}[good] == "present"
    assert again["totals"]["created"] == 0 and again["totals"]["present"] == 2
    assert again["only_projects"] == [PROJECT] and ("p-1", "not_replayable") not in {
        (p["photo_id"], p["status"]) for p in again["photos"]
    }
    assert route_counts(box.buildpass_url)["bulk-upsert"] == upserts  # settled from the ledger
    assert len(admin(box.buildpass_url, "/photos?builder_id=buil_demo")["photos"]) == 2


def test_replay_without_a_report_says_to_run_the_dag_first(box: sandbox.Sandbox, tmp_path: Path) -> None:
    store = Store(MemoryS3(), Layout("staging", "t"))
    with pytest.raises(ConfigError, match=r"no report for window .* run the DAG for the window first"):
        replay_step.replay(acc_client(box, tmp_path), buildpass_client(box), store, pipeline_config(), WINDOW)


def test_a_clean_result_is_ok() -> None:
    totals = {status.value: 0 for status in ReplayStatus}
    assert replay_step.replay_ok({"totals": {**totals, "created": 3, "deleted": 1}})
    assert not replay_step.replay_ok({"totals": {**totals, "not_replayable": 1}})
