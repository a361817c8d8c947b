"""The command line in process: its parser, how ``_run`` turns what stopped a command into an exit
code, and how ``projects --write-config`` writes its file. The commands' work is replaced by small
stand-ins (``args.func``); the subprocess tests in tests/integration/test_cli.py run the real thing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from acc_buildpass.cli import main
from acc_buildpass.errors import AccBuildPassError, ConfigError

WINDOW = ["--start", "2026-03-02T00:00:00Z", "--end", "2026-03-03T00:00:00Z"]


def parse(*argv: str) -> argparse.Namespace:
    return main.build_parser().parse_args(argv)


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """What argparse says on stderr when it refuses ``argv``, after checking it exits 2."""
    with pytest.raises(SystemExit) as stopped:
        parse(*argv)
    assert stopped.value.code == main.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "usage: acc-buildpass" in err
    return err


# -- the parser -----------------------------------------------------------------------------------


def test_each_subcommand_runs_its_own_command() -> None:
    commands = {
        "check": (["check"], main.cmd_check),
        "plan": (["plan", *WINDOW], main.cmd_plan),
        "projects": (["projects"], main.cmd_projects),
        "backfill": (["backfill", *WINDOW], main.cmd_backfill),
        "replay": (["replay", *WINDOW], main.cmd_replay),
        "follow-edits": (["follow-edits"], main.cmd_follow_edits),
        "verify": (["verify", *WINDOW], main.cmd_verify),
    }
    for name, (argv, func) in commands.items():
        args = parse(*argv)
        assert (args.command, args.func, args.verbose) == (name, func, False)
    assert parse("-v", "check").verbose and parse("--verbose", "projects").verbose


def test_check_and_projects_defaults() -> None:
    assert parse("check").pool is None
    assert parse("check", "--pool", "buildpass_api").pool == "buildpass_api"
    projects = parse("projects")
    assert (projects.json, projects.write_config, projects.force) == (False, None, False)
    written = parse("projects", "--json", "--write-config", "variable.json", "--force")
    assert (written.json, written.write_config, written.force) == (True, "variable.json", True)


@pytest.mark.parametrize("command", ["plan", "backfill", "replay", "verify"])
def test_a_window_command_takes_the_window_and_repeatable_projects(command: str) -> None:
    args = parse(command, *WINDOW)
    assert (args.start, args.end, args.json, args.project) == (WINDOW[1], WINDOW[3], False, None)
    only = parse(command, *WINDOW, "--json", "--project", "p1", "--project", "p2")
    assert (only.json, only.project) == (True, ["p1", "p2"])


def test_plan_shows_progress_every_ten_pages_unless_told() -> None:
    assert parse("plan", *WINDOW).progress_pages == 10
    assert parse("plan", *WINDOW, "--progress-pages", "0").progress_pages == 0
    assert parse("plan", *WINDOW, "--progress-pages", "3").progress_pages == 3
    assert not hasattr(parse("replay", *WINDOW), "progress_pages")


def test_follow_edits_defaults() -> None:
    args = parse("follow-edits")
    assert (args.days, args.until, args.delete_policy, args.dry_run, args.json) == (7, None, "report", False, False)
    chosen = parse("follow-edits", "--days", "366", "--until", "2026-03-03", "--delete-policy", "delete", "--dry-run")
    assert (chosen.days, chosen.until, chosen.delete_policy, chosen.dry_run) == (366, "2026-03-03", "delete", True)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["follow-edits", "--days", "0"], "--days"),
        (["follow-edits", "--days", "367"], "--days"),
        (["follow-edits", "--days", "a week"], "--days"),
        (["follow-edits", "--delete-policy", "archive"], "--delete-policy"),
        (["plan", *WINDOW, "--progress-pages", "-1"], "--progress-pages"),
        (["plan", *WINDOW, "--progress-pages", "ten"], "--progress-pages"),
        (["plan", "--end", "2026-03-03"], "--start"),
        (["replay", "--start", "2026-03-02"], "--end"),
        (["verify", "--end", "2026-03-03"], "--start"),
        (["projects", "--force=yes"], "--force"),
        (["nope"], "nope"),
        ([], "COMMAND"),
    ],
)
def test_a_bad_argument_exits_2_naming_it(argv: list[str], named: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert named in usage_error(capsys, *argv)


def test_a_bad_number_says_what_is_expected(capsys: pytest.CaptureFixture[str]) -> None:
    assert "expected a whole number of days from 1 to 366, got '0'" in usage_error(
        capsys, "follow-edits", "--days", "0"
    )
    said = usage_error(capsys, "plan", *WINDOW, "--progress-pages", "-1")
    assert "expected a whole number of 0 or more, got '-1'" in said


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["plan", "--start", "yesterday", "--end", "2026-03-03T00:00:00Z"], "acc-buildpass plan: --start/--end: "),
        (["replay", "--start", "2026-03-03", "--end", "2026-03-02"], "acc-buildpass replay: --start/--end: "),
        (["follow-edits", "--until", "soon"], "acc-buildpass follow-edits: --until: "),
        (["verify", "--start", "2026-03-03", "--end", "2026-03-03"], "acc-buildpass verify: --start/--end: "),
    ],
)
def test_a_time_that_is_no_iso_8601_or_a_reversed_window_exits_2_naming_the_option(
    argv: list[str], named: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_airflow() -> None:
        raise AssertionError("the times are checked before Airflow is asked for anything")

    monkeypatch.setattr(main.runtime, "use_metadata_db", no_airflow)
    assert main._run(parse(*argv)) == main.EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith(named) and "ISO 8601" in err


@pytest.mark.parametrize(
    "command", [[], ["check"], ["plan"], ["projects"], ["backfill"], ["replay"], ["follow-edits"], ["verify"]]
)
def test_help_exits_0_and_describes_the_command(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main.main([*command, "--help"])
    assert stopped.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(" ".join(["usage: acc-buildpass", *command]))
    if not command:
        assert "Exit codes: 0 ok; 1 problems found" in shown
        for name in ("check", "plan", "projects", "backfill", "replay", "follow-edits", "verify"):
            assert re.search(rf"^    {name}\b", shown, re.MULTILINE)  # each listed with its one-line help
        return
    func = parse(*command, *(WINDOW if command[0] in ("plan", "backfill", "replay", "verify") else [])).func
    assert func.__doc__ is not None
    assert " ".join(func.__doc__.split()) in " ".join(shown.split())  # the command's docstring is its description


def test_help_imports_neither_airflow_nor_the_clients() -> None:
    """--help answers at once: what the commands need is imported when they run."""
    probe = (
        "import sys\nfrom acc_buildpass.cli import main\n"
        "try:\n    main.main(['plan', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('airflow', 'rich', 'requests', 'boto3', 'pandas', 'acc_buildpass.pipeline')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr.strip() == "[]"


# -- _run: what stopped a command, as an exit code ----------------------------------------------


def run_as(func: main.Command, *argv: str) -> int:
    args = parse(*(argv or ("check",)))
    args.func = func
    return main._run(args)


def stopped_by(exc: BaseException) -> main.Command:
    def command(args: argparse.Namespace) -> int:
        raise exc

    return command


def test_the_command_s_own_exit_code_is_returned() -> None:
    assert run_as(lambda args: main.EXIT_OK) == 0
    assert run_as(lambda args: main.EXIT_PROBLEMS) == 1


def test_a_usage_error_exits_2_with_its_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_as(stopped_by(main.UsageError("out.json exists: pass --force to overwrite it")), "projects") == 2
    assert capsys.readouterr().err == "acc-buildpass projects: out.json exists: pass --force to overwrite it\n"


def test_a_configuration_error_exits_2_saying_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_as(stopped_by(ConfigError("Variable acc_buildpass_config is not set"))) == 2
    assert (
        capsys.readouterr().err
        == "acc-buildpass check: configuration error: Variable acc_buildpass_config is not set\n"
    )


def test_an_unexpected_error_exits_1_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_as(stopped_by(RuntimeError("S3 down\nmore lines")), "plan", *WINDOW) == 1
    err = capsys.readouterr().err
    assert err.startswith("acc-buildpass plan: failed: RuntimeError: S3 down") and "Traceback" not in err
    assert len(err.splitlines()) == 1  # one line, whatever the exception said


class Refused(AccBuildPassError):
    """One of the package's own errors: its message says it all."""


def test_one_of_the_package_s_errors_exits_1_with_its_own_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_as(stopped_by(Refused("BuildPass refused the photo: 413 too large"))) == 1
    assert capsys.readouterr().err == "acc-buildpass check: failed: BuildPass refused the photo: 413 too large\n"


def test_verbose_lets_the_traceback_through() -> None:
    args = parse("-v", "check")
    args.func = stopped_by(RuntimeError("S3 down"))
    with pytest.raises(RuntimeError, match="S3 down"):
        main._run(args)


def test_an_interrupt_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_as(stopped_by(KeyboardInterrupt())) == main.EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "acc-buildpass check: interrupted\n"


def test_a_reader_gone_away_exits_1_quietly_and_silences_stdout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(tmp_path / "stdout", "w") as stdout:
        monkeypatch.setattr(main, "_out", stdout)
        assert run_as(stopped_by(BrokenPipeError())) == 1
        # the file behind stdout is now /dev/null: flushing it at exit raises nothing more
        assert os.path.samestat(os.fstat(stdout.fileno()), os.stat(os.devnull))
    assert capsys.readouterr().err == ""


# -- _write_json: the starting Variable -----------------------------------------------------------


def test_write_json_writes_the_document_readably(tmp_path: Path) -> None:
    target = tmp_path / "variable.json"
    main._write_json(target, {"staging_bucket": "<staging bucket>", "name": "Bâtiment A"}, force=False)
    text = target.read_text(encoding="utf-8")
    assert json.loads(text) == {"staging_bucket": "<staging bucket>", "name": "Bâtiment A"}
    assert text.startswith('{\n  "staging_bucket"') and text.endswith("}\n") and "Bâtiment" in text


def test_write_json_never_overwrites_without_force(tmp_path: Path) -> None:
    target = tmp_path / "variable.json"
    target.write_text("the operator's edits\n")
    with pytest.raises(main.UsageError, match="exists: pass --force to overwrite it"):
        main._write_json(target, {"projects": []}, force=False)
    assert target.read_text() == "the operator's edits\n"


def test_write_json_with_force_replaces_the_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "variable.json"
    target.write_text("the operator's edits\n")
    target.chmod(0o600)
    main._write_json(target, {"projects": []}, force=True)
    assert json.loads(target.read_text()) == {"projects": []}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # a new file renamed over, not the old one rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["variable.json"]  # no temporary file left


def test_write_json_with_force_leaves_the_old_file_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "variable.json"
    target.write_text("the operator's edits\n")

    def refused(src: str, dst: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(main.os, "replace", refused)
    with pytest.raises(main.UsageError, match=r"cannot write .*variable\.json: Permission denied"):
        main._write_json(target, {"projects": []}, force=True)
    assert target.read_text() == "the operator's edits\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["variable.json"]


@pytest.mark.parametrize("force", [False, True])
def test_write_json_into_a_missing_folder_is_a_usage_error(tmp_path: Path, force: bool) -> None:
    with pytest.raises(main.UsageError, match=r"cannot write .*nowhere/variable\.json"):
        main._write_json(tmp_path / "nowhere" / "variable.json", {}, force=force)


@pytest.mark.parametrize(("ok", "code"), [(True, main.EXIT_OK), (False, main.EXIT_PROBLEMS)])
def test_verify_exits_1_when_buildpass_does_not_match_and_prints_json_on_stdout(
    ok: bool, code: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = {"ok": ok, "window": {}, "totals": {}, "findings": []}
    asked: list[Any] = []

    def verify(window: Any, projects: Any, progress: Any) -> tuple[dict[str, Any], str]:
        asked.append((window.id, projects))
        return result, "s3://staging/t/windows/w/verify.json"

    monkeypatch.setattr(main.runtime, "use_metadata_db", lambda: None)
    monkeypatch.setattr(main.runtime, "verify", verify)
    monkeypatch.setattr(main, "_out", sys.stdout)  # capsys's
    assert main._run(parse("verify", *WINDOW, "--json", "--project", "p1")) == code
    out, err = capsys.readouterr()
    assert json.loads(out) == result and "verify: result written to s3://staging/t/windows/w/verify.json" in err
    assert asked == [("20260302T000000Z--20260303T000000Z", ["p1"])]


def test_verify_of_an_unmapped_project_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def verify(window: Any, projects: Any, progress: Any) -> Any:
        raise ConfigError("ACC project(s) p9 not mapped in the Variable acc_buildpass_config")

    monkeypatch.setattr(main.runtime, "use_metadata_db", lambda: None)
    monkeypatch.setattr(main.runtime, "verify", verify)
    assert main._run(parse("verify", *WINDOW, "--project", "p9")) == main.EXIT_CONFIG
    assert "acc-buildpass verify: configuration error: ACC project(s) p9 not mapped" in capsys.readouterr().err
