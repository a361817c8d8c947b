"""The BuildPass folder of a mapping: found once, remembered in the staging bucket, found again
when BuildPass no longer has it; a wrong mapping is named before anything moves."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import sandbox
from acc_buildpass.errors import ConfigError
from acc_buildpass.models import PhotoStatus
from acc_buildpass.pipeline import folders
from acc_buildpass.pipeline.publish import publish_batch
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3
from tests.unit.pipeline.emulated import admin, buildpass_client, pipeline_config, route_counts
from tests.unit.pipeline.test_publish import in_buildpass, staged


def test_the_folder_is_found_once_then_remembered(box: sandbox.Sandbox) -> None:
    store, config = Store(MemoryS3(), Layout("staging", "t")), pipeline_config()
    first = folders.target(buildpass_client(box), store, config, 0, config.projects[0])
    looked_up = route_counts(box.buildpass_url)
    assert looked_up["folders"] >= 2  # the mapping's check, the lookup by name (and the create)
    again = folders.target(buildpass_client(box), store, config, 0, config.projects[0])
    assert again == first
    assert route_counts(box.buildpass_url) == looked_up  # a second run asks BuildPass nothing
    renamed = replace(config, folder_name="Other photos")  # what is remembered is for one folder name
    assert folders.target(buildpass_client(box), store, renamed, 0, renamed.projects[0]) != first


def test_a_wrong_buildpass_project_is_named_and_not_remembered(box: sandbox.Sandbox) -> None:
    store, config = Store(MemoryS3(), Layout("staging", "t")), pipeline_config()
    wrong = replace(config.projects[0], buildpass_project_id="proj_nope")
    with pytest.raises(ConfigError, match=r"projects\[0\]\.buildpass_project_id 'proj_nope'"):
        folders.target(buildpass_client(box), store, config, 0, wrong)
    assert store.get_json(store.layout.folder_cache("buil_demo", "proj_nope")) is None


def test_a_remembered_folder_deleted_in_buildpass_is_found_again_and_the_photos_land(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    store, config, batch, photos = staged(box, tmp_path, 3)
    gone = folders.target(buildpass_client(box), store, config, 0, config.projects[0])
    buildpass_client(box).delete_folder("buil_demo", gone)  # someone removes it in BuildPass
    outcomes = publish_batch(buildpass_client(box), store, config, replace(batch, folder_id=gone))
    assert [o.status for o in outcomes] == [PhotoStatus.CREATED] * 3
    made = in_buildpass(box)
    assert sorted(p["externalSourceId"] for p in made) == sorted(p.id for p in photos)
    now = store.get_json(store.layout.folder_cache("buil_demo", "proj_demo"))["folder_id"]
    assert now != gone and {p["folderId"] for p in made} == {now}
    assert [f["id"] for f in admin(box.buildpass_url, "/folders?builder_id=buil_demo")["folders"]] == [now]


def test_runs_starting_together_on_one_host_resolve_the_folder_once(box: sandbox.Sandbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store, config = Store(MemoryS3(), Layout("staging", "t")), pipeline_config()

    def resolve(_: int) -> str:  # each as a task process would: its own client
        return folders.target(buildpass_client(box), store, config, 0, config.projects[0])

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = set(pool.map(resolve, range(4)))
    counts = route_counts(box.buildpass_url)
    assert len(ids) == 1
    # One listing (the mapping's check and the lookup at once), the create, one listing to settle.
    assert counts["folders"] == 3 and "folder" not in counts, counts
