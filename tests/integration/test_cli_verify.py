"""``acc-buildpass verify``: the real command, over the real stack, after the DAG copied a window.

The window is copied into a BuildPass project of its own (others' photos never change its count);
verify then confirms every eligible photo (exit 0), and after a photo is added to the window in
ACC and another is copied twice in BuildPass, names both (exit 1).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from acc_buildpass.models import Window
from sandbox.stack import BP_CLIENT, BUILDER, Stack

from tests.integration.test_cli_replay import COPIED, cli, iso

DAY = datetime(2026, 4, 11, tzinfo=UTC)


@pytest.mark.slow
def test_verify_confirms_a_copied_window_then_names_an_absent_and_a_doubled_photo(stack: Stack) -> None:
    project = str(uuid.uuid4())
    bp_project = f"proj_{project[:8]}"
    start, end = DAY, DAY + timedelta(days=1)
    stack.admin("buildpass", "POST", "/_admin/projects", {"builder_id": BUILDER, "project_id": bp_project, "name": "V"})
    stack.seed_acc(project, count=5, videos=1, deleted=1, start=iso(start), end=iso(end), seed=51)
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]
    eligible = sorted(p["id"] for p in photos if not p.get("deletedAt") and p["mediaType"] in COPIED)
    config = stack.config([project], prefix=f"verify-{project[:8]}")
    config["projects"][0]["buildpass_project_id"] = bp_project
    env = stack.env(config)
    window = ["--start", start.isoformat(), "--end", end.isoformat()]

    rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
    assert rc == 0, output[-3000:]
    clean = cli("verify", *window, "--json", env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    result = json.loads(clean.stdout)
    assert result["ok"] and result["findings"] == []
    assert (result["totals"]["eligible"], result["totals"]["confirmed"]) == (len(eligible), len(eligible))
    print(f"verify of {len(eligible)} eligible photos cost: {result['cost']}")
    key = f"{config['staging_prefix']}/windows/{Window(start, end).id}/verify.json"
    assert json.loads(stack.s3().get_object(Bucket=stack.bucket, Key=key)["Body"].read()) == result

    [late] = stack.seed_acc(project, count=1, start=iso(start + timedelta(hours=23)), end=iso(end), seed=52)["ids"]
    made = {
        p["externalSourceId"]: p
        for p in stack.admin("buildpass", "GET", f"/_admin/photos?builder_id={BUILDER}")["photos"]
        if p["projectId"] == bp_project
    }
    twice = eligible[0]
    stack.admin("buildpass", "POST", "/_admin/answers", {"external_source_id": "metadata"})
    try:
        _post_again(stack, bp_project, made[twice])
        wrong = cli("verify", *window, env=env)
    finally:
        stack.admin("buildpass", "POST", "/_admin/answers", {"external_source_id": "none"})
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert f"{project} {late} absent: in no BuildPass photo, and no ledger entry" in wrong.stdout
    assert f"{project} {twice} (" in wrong.stdout and "doubled: in BuildPass 2 times" in wrong.stdout
    assert wrong.stdout.splitlines()[-1] == "BuildPass does not match ACC: see above."


def _post_again(stack: Stack, bp_project: str, photo: dict[str, object]) -> None:
    """A second BuildPass photo of the same ACC photo and upload, as a replayed create makes it."""
    import requests

    token = requests.post(
        stack.buildpass_url + "/oauth/token",
        json={"grant_type": "client_credentials", "client_id": BP_CLIENT[0], "client_secret": BP_CLIENT[1]},
        headers={"X-BuildPass-Api-Version": "v1"},
        timeout=10,
    ).json()["access_token"]
    response = requests.post(
        f"{stack.buildpass_url}/builders/{BUILDER}/photos",
        headers={"Authorization": f"Bearer {token}", "X-BuildPass-Api-Version": "v1"},
        json={
            "fileName": "again.jpg",
            "projectId": bp_project,
            "externalSourceId": photo["externalSourceId"],
            "imageAttachment": {"key": photo["key"], "type": "attachment"},
        },
        timeout=10,
    )
    assert response.status_code == 201, response.text
