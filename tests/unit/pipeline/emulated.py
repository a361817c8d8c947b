"""Calls on the emulators (include/sandbox) for the step tests: admin calls, route counts, and
our real clients signed in to them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
import sandbox
from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.clients.retry import RetryPolicy
from acc_buildpass.clients.tokens import FileTokenStore
from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import AccPhoto, Batch, Window
from acc_buildpass.storage import Store

Client = TypeVar("Client", bound=AccClient)
FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02)


def admin(url: str, path: str, body: Any | None = None) -> Any:
    """An admin call to an emulator: GET without a body, POST with one."""
    if body is None:
        response = requests.get(url + "/_admin" + path, timeout=10)
    else:
        response = requests.post(url + "/_admin" + path, json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def route_counts(url: str) -> dict[str, int]:
    return admin(url, "/stats")["requests"]  # type: ignore[no-any-return]


def acc_client(box: sandbox.Sandbox, tmp_path: Path) -> AccClient:
    """Our ACC client, signed in as the emulator's user."""
    return signed_in(AccClient, box, tmp_path)


def signed_in(cls: type[Client], box: sandbox.Sandbox, tmp_path: Path) -> Client:
    """An ACC client of class ``cls`` (ours or a subclass), signed in as the emulator's user."""
    refresh = admin(box.acc_url, "/refresh-token", {"client_id": "acc-demo-client"})["refresh_token"]
    store = FileTokenStore(tmp_path / "tokens", key="step-tests")
    return cls(box.acc_url, "acc-demo-client", "acc-demo-secret", refresh, store, policy=FAST_RETRY)


def buildpass_client(box: sandbox.Sandbox) -> BuildPassClient:
    return BuildPassClient(box.buildpass_url, "bp-demo-client", "bp-demo-secret", policy=FAST_RETRY)


PROJECT = "36c0838c-0360-4cfa-b2c6-85e0056ec7e8"
WINDOW = Window(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))


def pipeline_config(**extra: Any) -> PipelineConfig:
    """One mapping onto the BuildPass emulator's demo project; one download thread, so the
    order of downloads (and of a signed URL's expiry) is the manifest's."""
    return PipelineConfig.from_variable(
        {
            "staging_bucket": "staging",
            "staging_prefix": "t",
            "download_threads": 1,
            "retry": {"attempts": 3, "initial_wait": 0.01, "max_wait": 0.02},
            "projects": [{"acc_project_id": PROJECT, "builder_id": "buil_demo", "buildpass_project_id": "proj_demo"}],
            **extra,
        }
    )


def seeded_batch(
    box: sandbox.Sandbox, acc: AccClient, store: Store, config: PipelineConfig, count: int, **seed: Any
) -> tuple[Batch, list[AccPhoto], list[str]]:
    """``count`` photos seeded in ACC, listed and written as one manifest part as extraction
    does (without signed URLs): (batch 0 of the window, its photos in listing order, the ids
    in the order seeded, which ``seed`` counts positions in).

    :param seed: changes made to the ACC records before the listing, by position:
        ``{"behaviour": {0: "empty"}, "patch": {1: {"size": 5}}}``; ``min_size`` and ``max_size``
        bound the files' sizes in bytes
    """
    sizes = {k: seed[k] for k in ("min_size", "max_size") if k in seed}
    body = {"project_id": PROJECT, "count": count, "start": "2024-01-01T00:00:00", **sizes}
    ids = admin(box.acc_url, "/seed", body)["ids"]
    for n, behaviour in seed.get("behaviour", {}).items():
        admin(box.acc_url, f"/photos/{ids[n]}/behaviour", {"download": behaviour})
    for n, fields in seed.get("patch", {}).items():
        response = requests.patch(f"{box.acc_url}/_admin/photos/{ids[n]}", json=fields, timeout=10)
        assert response.status_code == 200, response.text
    listed = acc.iter_photos(PROJECT, WINDOW.start, WINDOW.end)
    photos = [replace(p, file_url=None) for p in listed if isinstance(p, AccPhoto)]
    key = store.layout.manifest_part(WINDOW, PROJECT, 0)
    store.write_manifest(key, photos)
    batch = Batch.of(config.projects[0], WINDOW, index=0, label="test 1/1", folder_id=None, parts=(key,), count=count)
    return batch, photos, ids


def acc_truth(box: sandbox.Sandbox) -> dict[str, dict[str, Any]]:
    """The ACC emulator's records by id, each with the sha256 of its bytes."""
    return {p["id"]: p for p in admin(box.acc_url, f"/photos?project_id={PROJECT}")["photos"]}
