"""The installed ``acc-buildpass`` command, run as a subprocess the way an operator runs it.

The slow tests point it at the session's emulators and SeaweedFS through ``stack.env(config)``
(the same ``AIRFLOW_CONN_*``/``AIRFLOW_VAR_*`` environment the DAG runs with); each uses its
own ACC project and staging prefix.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ConfigError
from acc_buildpass.models import parse_time
from sandbox.stack import Stack

CLI = Path(sys.executable).parent / "acc-buildpass"
DAY = datetime(2026, 4, 7, tzinfo=UTC)
COPIED = ("NORMAL", "INFRARED", "PHOTOSPHERE")


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    assert CLI.exists(), f"{CLI} is missing: run .venv/bin/pip install -e . --no-deps"
    return subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S")


def lines(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(status + " ")]


def config_for(stack: Stack, project: str, **extra: Any) -> dict[str, Any]:
    config = stack.config([project], prefix=f"cli-{project[:8]}")
    config["retry"] = {"attempts": 4, "initial_wait": 0.2, "max_wait": 1, "max_retry_after": 5}
    config.update(extra)
    return config


def token_calls(stack: Stack) -> int:
    return int(stack.admin("acc", "GET", "/_admin/stats")["requests"].get("token", 0))


def staged_keys(stack: Stack, config: dict[str, Any]) -> list[str]:
    listing = stack.s3().list_objects_v2(Bucket=stack.bucket, Prefix=config["staging_prefix"] + "/")
    return [item["Key"] for item in listing.get("Contents", [])]


def airflow(stack: Stack, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [stack.bin("airflow"), *args], env=env or stack.env(), capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout


@pytest.fixture(scope="module")
def pool(stack: Stack) -> str:
    """The pool the DAG's publish tasks use, made in the session's metadata DB as an operator would."""
    airflow(stack, "pools", "set", "buildpass_api", "4", "BuildPass: 100 requests / 10 s per IP")
    return "buildpass_api"


@pytest.fixture
def project(stack: Stack) -> str:
    project = str(uuid.uuid4())
    stack.seed_acc(project, count=3, start=iso(DAY), end=iso(DAY + timedelta(days=1)), seed=5)
    return project


# -- without the stack ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["check"], ["plan"], ["projects"]])
def test_help_works_for_the_command_and_every_subcommand(command: list[str], tmp_path: Path) -> None:
    proc = cli(*command, "--help", env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: acc-buildpass " + " ".join(command))
    expected = {(): "Exit codes", ("check",): "--pool", ("plan",): "--start", ("projects",): "--write-config"}
    assert expected[tuple(command)] in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["nope"],
        ["plan", "--end", "2026-01-02"],
        ["plan", "--start", "2026-01-01", "--end", "2026-01-02", "--progress-pages", "-1"],
        ["projects", "--force=yes"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    proc = cli(*args, env={"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "usage: acc-buildpass" in proc.stderr


def test_a_bad_window_or_a_missing_variable_is_a_configuration_error(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    reversed_window = cli("plan", "--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01T00:00:00Z", env=env)
    assert reversed_window.returncode == 2
    assert "--start/--end" in reversed_window.stderr and "is not after its start" in reversed_window.stderr
    no_variable = cli("plan", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-02T00:00:00Z", env=env)
    assert no_variable.returncode == 2, no_variable.stderr
    assert "Variable acc_buildpass_config is not set" in no_variable.stderr
    assert no_variable.stdout == ""


# -- check ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_check_passes_on_a_good_config_and_spends_the_refresh_token_at_most_once(
    stack: Stack, pool: str, project: str, tmp_path: Path
) -> None:
    config = config_for(stack, project)
    env = stack.env(config)
    # A token chain and store of this test's own: the count of refreshes is exact.
    env["AIRFLOW_CONN_ACC_DEFAULT"] = json.dumps(
        {
            "conn_type": "acc",
            "host": stack.acc_url,
            "login": "acc-demo-client",
            "password": "acc-demo-secret",
            "extra": {"refresh_token": stack.new_refresh_token(), "token_store": str(tmp_path / "tokens")},
        }
    )
    before = token_calls(stack)
    first = cli("check", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert lines(first.stdout, "PROBLEM") == [] and lines(first.stdout, "SKIP") == []
    ok = "\n".join(lines(first.stdout, "OK"))
    for subject in (
        "OK Variable acc_buildpass_config",
        "OK ACC connection acc_default",
        "OK BuildPass connection buildpass_default",
        f"OK staging s3://{stack.bucket}/{config['staging_prefix']}/",
        f"OK projects[0].acc_project_id {project}",
        "OK projects[0] buil_demo/proj_demo",
        f"OK Airflow pool {pool}",
    ):
        assert subject in ok, first.stdout
    assert first.stdout.rstrip().endswith("All checks passed")
    assert token_calls(stack) - before == 2  # the client check, and one refresh
    assert "refresh token used once" in first.stdout
    assert staged_keys(stack, config) == []  # the probe object was deleted

    before = token_calls(stack)
    second = cli("check", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert token_calls(stack) - before == 1  # the client check only: the stored access token is reused
    assert "no refresh token spent" in second.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "buildpass_project_id",
            "proj_nope",
            "projects[0].buildpass_project_id 'proj_nope': no such project in BuildPass builder 'buil_demo'",
        ),
        ("builder_id", "buil_nope", "projects[0].builder_id 'buil_nope': BuildPass refused access (403)"),
    ],
)
def test_check_names_a_wrong_buildpass_project_or_builder(
    stack: Stack, pool: str, project: str, key: str, value: str, expected: str
) -> None:
    config = config_for(stack, project)
    config["projects"][0][key] = value
    folders = stack.admin("buildpass", "GET", "/_admin/folders?builder_id=buil_demo")["folders"]
    proc = cli("check", env=stack.env(config))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [problem] = lines(proc.stdout, "PROBLEM")
    assert expected in problem
    assert f"OK projects[0].acc_project_id {project}" in proc.stdout
    assert proc.stdout.rstrip().endswith("1 problem(s) found")
    assert stack.admin("buildpass", "GET", "/_admin/folders?builder_id=buil_demo")["folders"] == folders


@pytest.mark.slow
def test_check_names_a_missing_bucket(stack: Stack, pool: str, project: str) -> None:
    bucket = f"no-such-bucket-{project[:8]}"
    config = config_for(stack, project, staging_bucket=bucket)
    proc = cli("check", env=stack.env(config))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [problem] = lines(proc.stdout, "PROBLEM")
    assert f"staging bucket '{bucket}' is not usable" in problem and "'staging_bucket'" in problem
    buckets = [b["Name"] for b in stack.s3().list_buckets()["Buckets"]]
    assert bucket not in buckets  # looked at, never made


@pytest.mark.slow
def test_check_names_a_wrong_acc_client_secret_without_spending_the_refresh_token(
    stack: Stack, pool: str, project: str
) -> None:
    config = config_for(stack, project)
    env = stack.env(config)
    acc = json.loads(env["AIRFLOW_CONN_ACC_DEFAULT"])
    acc["password"] = "not-the-secret"
    env["AIRFLOW_CONN_ACC_DEFAULT"] = json.dumps(acc)
    before = token_calls(stack)
    proc = cli("check", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [problem] = lines(proc.stdout, "PROBLEM")
    assert problem.startswith("PROBLEM ACC connection acc_default: ACC refused the client id or secret (401)")
    assert "password" in problem
    assert lines(proc.stdout, "SKIP") == ["SKIP ACC projects: not checked: the ACC sign-in failed"]
    assert token_calls(stack) - before == 1  # the refused client check; no refresh was tried
    assert "OK projects[0] buil_demo/proj_demo" in proc.stdout  # BuildPass still checked


@pytest.mark.slow
def test_check_reads_the_variable_from_the_metadata_db_and_names_an_unreachable_db_once(
    stack: Stack, pool: str, project: str, tmp_path: Path
) -> None:
    config = config_for(stack, project)
    env = stack.env(config)
    airflow(stack, "variables", "set", "acc_buildpass_config", json.dumps(config), env=stack.env())
    try:
        from_db = cli("check", env=stack.env())  # no AIRFLOW_VAR_*: the Variable comes from the DB
    finally:
        airflow(stack, "variables", "delete", "acc_buildpass_config", env=stack.env())
    assert from_db.returncode == 0, from_db.stdout + from_db.stderr
    assert "OK Variable acc_buildpass_config: 1 mapping(s)" in from_db.stdout
    assert f"OK projects[0].acc_project_id {project}" in from_db.stdout

    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path}/missing-dir/airflow.db"
    proc = cli("check", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [problem] = lines(proc.stdout, "PROBLEM")
    assert problem.startswith("PROBLEM Airflow metadata DB: not reachable")
    assert "OK Variable acc_buildpass_config" in proc.stdout  # the environment still works
    assert "Traceback" not in proc.stderr


# -- plan ----------------------------------------------------------------------------------------


def truth(stack: Stack, project: str, start: datetime, end: datetime) -> dict[str, Any]:
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]
    inside = [p for p in photos if start <= parse_time(p["createdAt"]) < end]
    deleted = [p for p in inside if p.get("deletedAt")]
    videos = [p for p in inside if not p.get("deletedAt") and p["mediaType"] == "VIDEO"]
    eligible = [p for p in inside if not p.get("deletedAt") and p["mediaType"] in COPIED]
    return {
        "found": len(inside),
        "eligible": len(eligible),
        "bytes": sum(p["size"] for p in eligible),
        "deleted": len(deleted),
        "videos": len(videos),
    }


def acc_downloads(stack: Stack) -> int:
    requests = stack.admin("acc", "GET", "/_admin/stats")["requests"]
    return int(requests.get("oss", 0)) + int(requests.get("asset", 0))


@pytest.mark.slow
def test_plan_matches_acc_creates_nothing_and_after_a_run_finds_everything_in_buildpass(stack: Stack) -> None:
    project = str(uuid.uuid4())
    start, end = DAY, DAY + timedelta(days=1)
    stack.seed_acc(project, count=64, start=iso(start), end=iso(end), seed=21, deleted=4, videos=3)
    stack.seed_acc(project, count=9, start=iso(start - timedelta(days=1)), end=iso(start), seed=22)  # not in window
    expected = truth(stack, project, start, end)
    assert (expected["found"], expected["deleted"], expected["videos"]) == (64, 4, 3)
    config = config_for(stack, project)
    env = stack.env(config)
    window = ["--start", start.isoformat(), "--end", end.isoformat()]

    bp_photos = stack.admin("buildpass", "GET", "/_admin/photos?builder_id=buil_demo")["photos"]
    bp_requests = stack.admin("buildpass", "GET", "/_admin/stats")["total"]
    downloads = acc_downloads(stack)
    proc = cli("plan", *window, "--json", "--progress-pages", "1", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    plan = json.loads(proc.stdout)
    [row] = plan["projects"]
    assert row["acc_project_id"] == project
    assert row["found"] == expected["found"]
    assert row["eligible"] == row["to_copy"] == expected["eligible"] == 57
    assert row["to_copy_bytes"] == expected["bytes"]
    assert row["already_in_buildpass"] == 0
    assert row["skipped_reasons"] == {"deleted in ACC": 4, "mediaType VIDEO not copied": 3}
    assert row["will_fail"] == 0
    assert plan["totals"]["to_copy"] == 57 and plan["dry_run"] is True
    assert f"plan: {project}: 2 pages" in proc.stderr  # progress, one line a page here
    # Nothing moved: no download from ACC, no request at all to BuildPass, nothing staged.
    assert acc_downloads(stack) == downloads
    assert stack.admin("buildpass", "GET", "/_admin/stats")["total"] == bp_requests
    assert stack.admin("buildpass", "GET", "/_admin/photos?builder_id=buil_demo")["photos"] == bp_photos
    assert staged_keys(stack, config) == []

    rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
    assert rc == 0, output[-3000:]

    after = cli("plan", *window, "--json", env=env)
    assert after.returncode == 0, after.stdout + after.stderr
    [row] = json.loads(after.stdout)["projects"]
    assert row["already_in_buildpass"] == row["eligible"] == 57
    assert row["to_copy"] == 0 and row["to_copy_bytes"] == 0
    assert row["skipped"] == 7

    table = cli("plan", *window, env=env)
    assert table.returncode == 0, table.stderr
    [data_row] = [line for line in table.stdout.splitlines() if line.startswith(project)]
    assert data_row.split() == [project, "buil_demo/proj_demo", "64", "0", "0", "B", "57", "7", "0"]
    assert f"  {project}: 4 skipped: deleted in ACC" in table.stdout


@pytest.mark.slow
def test_plan_names_an_acc_project_that_does_not_exist(stack: Stack) -> None:
    config = config_for(stack, str(uuid.uuid4()))  # never seeded: ACC answers 404
    proc = cli("plan", "--start", "2026-04-07", "--end", "2026-04-08", env=stack.env(config))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "projects[0].acc_project_id" in proc.stderr and "no such ACC project" in proc.stderr
    assert proc.stdout == ""


# -- projects ------------------------------------------------------------------------------------


@pytest.fixture
def named_project(stack: Stack) -> str:
    project = str(uuid.uuid4())
    stack.seed_acc(project, count=2, start=iso(DAY), end=iso(DAY + timedelta(days=1)), seed=9)
    stack.admin("acc", "POST", "/_admin/projects", {"project_id": project, "name": "Harbour Tower — Stage 2"})
    return project


@pytest.mark.slow
def test_projects_lists_a_seeded_project_and_its_mapping(stack: Stack, named_project: str) -> None:
    config = config_for(stack, named_project)
    table = cli("projects", env=stack.env(config))
    assert table.returncode == 0, table.stdout + table.stderr
    [row] = [line for line in table.stdout.splitlines() if line.startswith(named_project)]
    assert "Harbour Tower — Stage 2" in row and row.rstrip().endswith("buil_demo/proj_demo")
    assert "ACC hub Sandbox Construction Co. (b." in table.stdout
    assert "no documented endpoint lists a builder's projects" in table.stdout
    assert "builder buil_demo: projects proj_demo" in table.stdout

    as_json = cli("projects", "--json", env=stack.env(config))
    assert as_json.returncode == 0, as_json.stderr
    payload = json.loads(as_json.stdout)
    [hub] = payload["acc"]
    listed = {p["acc_project_id"]: p for p in hub["projects"]}
    assert listed[named_project] == {
        "acc_project_id": named_project,
        "name": "Harbour Tower — Stage 2",
        "mapped_to": "buil_demo/proj_demo",
    }
    assert payload["buildpass"]["builders"] == [{"builder_id": "buil_demo", "mapped_projects": ["proj_demo"]}]


@pytest.mark.slow
def test_projects_writes_a_starting_config_and_never_overwrites_without_force(
    stack: Stack, named_project: str, tmp_path: Path
) -> None:
    env = stack.env()  # no Variable yet: the first thing an operator runs
    target = tmp_path / "acc_buildpass_config.json"
    proc = cli("projects", "--write-config", str(target), env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Wrote {target}" in proc.stderr
    written = json.loads(target.read_text())
    entries = {p["acc_project_id"]: p for p in written["projects"]}
    assert entries[named_project]["acc_project_name"] == "Harbour Tower — Stage 2"
    assert entries[named_project]["builder_id"] == "<BuildPass builder id>"
    with pytest.raises(ConfigError, match="staging_bucket"):
        PipelineConfig.from_variable(written)  # placeholders are refused until replaced
    with pytest.raises(ConfigError, match="builder_id"):
        PipelineConfig.from_variable({**written, "staging_bucket": stack.bucket})

    text = target.read_text()
    edited = json.loads(
        text.replace("<staging bucket>", stack.bucket)
        .replace("<BuildPass builder id>", "buil_demo")
        .replace("<BuildPass project id>", "proj_demo")
    )
    config = PipelineConfig.from_variable(edited)
    mine = [m for m in config.projects if m.acc_project_id == named_project]
    assert [(m.builder_id, m.buildpass_project_id, m.buildpass_folder_id) for m in mine] == [
        ("buil_demo", "proj_demo", None)
    ]

    nowhere = cli("projects", "--write-config", str(tmp_path / "no-such-dir" / "c.json"), env=env)
    assert nowhere.returncode == 2 and "cannot write" in nowhere.stderr
    again = cli("projects", "--write-config", str(target), env=env)
    assert again.returncode == 2
    assert "exists: pass --force" in again.stderr
    assert target.read_text() == text
    target.write_text("{}")
    forced = cli("projects", "--write-config", str(target), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert named_project in {p["acc_project_id"] for p in json.loads(target.read_text())["projects"]}
