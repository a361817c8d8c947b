"""``acc-buildpass``: the operator's command line (check, plan, projects, replay, follow-edits).

A thin layer: it reads the same configuration as the DAG through Airflow (the Variable
``acc_buildpass_config`` and the connections, from ``AIRFLOW_VAR_*``/``AIRFLOW_CONN_*``, a
secrets backend or the metadata DB), builds the clients with the package's hooks and calls
:mod:`acc_buildpass.operations`.

Exit codes: 0 all good; 1 problems found (``check``), photos still failed (``replay``), a photo not
updated (``follow-edits``) or the work failed (an API or storage error); 2 a usage or configuration
error (bad arguments, a missing or invalid Variable or connection, a file that would be overwritten).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from acc_buildpass import runtime

# The configuration and clients, shared with the DAG acc_buildpass_operations (light imports only).
from acc_buildpass.runtime import build_acc, build_buildpass, build_store, load_config
from acc_buildpass.runtime import pool_exists as _pool_exists
from acc_buildpass.runtime import require_connection as _require_connection
from acc_buildpass.settings import DEFAULT_POOL

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2
__all__ = ["build_acc", "build_buildpass", "build_store", "load_config", "main"]


class UsageError(Exception):
    """Exit 2 with this message."""


# -- Airflow glue -------------------------------------------------------------------------------


_out = sys.stdout  # the commands' own output; everything else (Airflow's logs) goes to stderr


def emit(text: str = "") -> None:
    print(text, file=_out, flush=True)


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """Airflow points its log handlers at ``sys.stdout`` when first imported: swap it for stderr
    first, so ``--json`` output stays parseable and the lines stay the commands' own."""
    global _out
    _out = sys.stdout
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        sys.stdout = _out


# -- commands -----------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    from acc_buildpass import runtime as commands

    runtime.use_metadata_db()
    pool = args.pool or os.environ.get("ACC_BUILDPASS_POOL") or DEFAULT_POOL
    findings = commands.check(pool, _pool_exists)
    for finding in findings:
        emit(finding.line())
    problems = sum(f.problem for f in findings)
    emit(f"{problems} problem(s) found" if problems else "All checks passed")
    return EXIT_PROBLEMS if problems else EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from acc_buildpass import runtime as commands
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import dry_run

    window = _window(args)
    runtime.use_metadata_db()
    with _progress("plan", every=args.progress_pages) as progress:
        _, plans = commands.plan(window, args.project, progress)
    if args.json:
        emit(json.dumps(dry_run.plan_json(window, plans), indent=1))
    else:
        emit(render.render_plan(window, plans))
    return EXIT_OK


def _progress(prefix: str, every: int = 1) -> Any:
    """A bar on stderr when it is a terminal, else a line every ``every`` steps (0: none)."""
    from acc_buildpass.cli.progress import Progress

    if every == 0:
        return contextlib.nullcontext(None)
    return Progress(prefix, stream=sys.stderr, every=every)


def _window(args: argparse.Namespace) -> Any:
    from acc_buildpass.models import Window, parse_time

    try:
        return Window(parse_time(args.start), parse_time(args.end))
    except ValueError as exc:
        raise UsageError(f"--start/--end: {exc}; give ISO 8601 times, start before end") from None


def cmd_replay(args: argparse.Namespace) -> int:
    from acc_buildpass import runtime as commands
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import replay as replay_step

    window = _window(args)
    runtime.use_metadata_db()
    with _progress("replay") as progress:
        result, written = commands.replay(window, args.project, progress)
    print(f"replay: report written to {written}", file=sys.stderr)
    if args.json:
        emit(json.dumps(result, indent=1))
    else:
        emit(render.render_replay(result))
    return EXIT_OK if replay_step.replay_ok(result) else EXIT_PROBLEMS


def cmd_projects(args: argparse.Namespace) -> int:
    from acc_buildpass.cli import render
    from acc_buildpass.config import PipelineConfig
    from acc_buildpass.errors import ConfigError
    from acc_buildpass.pipeline import projects

    target = Path(args.write_config) if args.write_config else None
    if target is not None and target.exists() and not args.force:
        raise UsageError(f"{target} exists: pass --force to overwrite it")
    runtime.use_metadata_db()
    config: PipelineConfig | None = None
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"note: {exc}; listing with the default connection ids", file=sys.stderr)
    acc = build_acc(config, config.acc_conn_id if config else PipelineConfig.acc_conn_id)
    bp_conn = config.buildpass_conn_id if config else PipelineConfig.buildpass_conn_id
    try:
        extra = _require_connection(bp_conn).extra_dejson
    except ConfigError:
        extra = {}
    found = projects.discover(acc)
    builders = projects.known_builders(config, extra)
    if target is not None:  # first: the file is what was asked for, whatever becomes of stdout
        photos_projects = [p for _, hub_projects in found for p in hub_projects]
        _write_json(target, projects.starter_config(photos_projects, config, builders), force=args.force)
        print(
            f"Wrote {target}: {len(photos_projects)} ACC project(s); replace every '<...>' placeholder, drop the "
            "projects not to copy, then set it as the Variable acc_buildpass_config",
            file=sys.stderr,
        )
    if args.json:
        emit(json.dumps(projects.projects_json(found, config, builders), indent=1))
    else:
        emit(render.render_projects(found, config, builders))
    return EXIT_OK


def _write_json(path: Path, payload: Any, *, force: bool) -> None:
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    try:
        if not force:
            with open(path, "x", encoding="utf-8") as out:  # never replaces a file that appeared meanwhile
                out.write(text)
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except FileExistsError:
        raise UsageError(f"{path} exists: pass --force to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 366:
        raise argparse.ArgumentTypeError(f"expected a whole number of days from 1 to 366, got {text!r}")
    return int(text)


def cmd_follow_edits(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from acc_buildpass.cli import render
    from acc_buildpass.models import parse_time
    from acc_buildpass.pipeline import follow_edits as follow

    try:
        until = parse_time(args.until) if args.until else datetime.now(UTC)
    except ValueError as exc:
        raise UsageError(f"--until: {exc}; give an ISO 8601 time") from None
    runtime.use_metadata_db()
    config = load_config()
    acc = build_acc(config, config.acc_conn_id)
    buildpass = build_buildpass(config, config.buildpass_conn_id)
    store = build_store(config)

    def progress(edits: Any) -> None:
        counts = ", ".join(f"{n} {what}" for what, n in edits.counts().items() if n)
        print(f"follow-edits: {edits.mapping.label}: {counts or 'nothing listed'}", file=sys.stderr)

    result = follow.follow_edits(
        acc,
        buildpass,
        store,
        config,
        args.days,
        until,
        delete_policy=args.delete_policy,
        dry_run=args.dry_run,
        on_project=progress,
    )
    emit(json.dumps(result, indent=1) if args.json else render.render_follow_edits(result))
    return EXIT_PROBLEMS if result["totals"]["failed"] else EXIT_OK


# -- parser -------------------------------------------------------------------------------------


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acc-buildpass",
        description="Operate the ACC → BuildPass photo copy: check the setup, plan a window, discover projects, "
        "replay a window's failed photos, follow ACC edits of copied photos. "
        "Reads the same configuration as the DAG (Variable acc_buildpass_config, connections acc_default, "
        "buildpass_default, acc_buildpass_staging) through Airflow.",
        epilog="Exit codes: 0 ok; 1 problems found, photos still failed or the work failed; 2 usage or "
        "configuration error.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the package's logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="verify connections, bucket, project mappings and pool before anything moves",
        description="Sign in to ACC (reusing a valid stored access token, else spending the refresh token once) "
        "and BuildPass, write and delete a probe object in the staging bucket, check every mapped ACC project "
        "and BuildPass project/folder, and look for the Airflow pool. One line per check: OK, PROBLEM (with "
        "what to fix) or SKIP. Exit 1 when any problem was found.",
    )
    check.add_argument(
        "--pool", default=None, help=f"pool to look for (default: $ACC_BUILDPASS_POOL or {DEFAULT_POOL})"
    )
    check.set_defaults(func=cmd_check)

    plan = sub.add_parser(
        "plan",
        help="dry run of a window: photos and bytes to copy, already in BuildPass, skipped and why",
        description="List the window's photos in ACC and look them up in the ledger. No bytes are staged, "
        "nothing is created, nothing is written to BuildPass.",
    )
    plan.add_argument("--start", required=True, help="window start, ISO 8601 (inclusive; UTC when no zone)")
    plan.add_argument("--end", required=True, help="window end, ISO 8601 (exclusive)")
    plan.add_argument("--json", action="store_true", help="machine-readable output")
    plan.add_argument(
        "--progress-pages",
        type=_non_negative,
        default=10,
        metavar="N",
        help="progress on stderr: a bar on a terminal, else a line every N pages of 50 (0: none; default 10)",
    )
    plan.add_argument(
        "--project", action="append", metavar="ACC_PROJECT_ID", help="only this mapped ACC project (repeatable)"
    )
    plan.set_defaults(func=cmd_plan)

    projects = sub.add_parser(
        "projects",
        help="list the ACC projects the credentials can see and the BuildPass builders known",
        description="List ACC hubs and projects (Data Management) visible to the ACC connection's user, and the "
        "BuildPass builders known from the Variable and the connection (BuildPass documents no project "
        "listing). --write-config writes a starting Variable to edit.",
    )
    projects.add_argument("--json", action="store_true", help="machine-readable output")
    projects.add_argument(
        "--write-config", metavar="PATH", help="write a starting acc_buildpass_config JSON (placeholders to edit)"
    )
    projects.add_argument("--force", action="store_true", help="let --write-config overwrite an existing file")
    projects.set_defaults(func=cmd_projects)

    replay = sub.add_parser(
        "replay",
        help="retry exactly the photos a window's report lists as failed; report what still fails",
        description="Read the window's report (written by the DAG's run of the window), fetch the current ACC "
        "record of every photo it lists as failed, and copy those photos, and only those, through the DAG's "
        "stage and publish steps: each photo lands in BuildPass exactly once (a photo already there is "
        "neither downloaded nor sent again). Photos deleted in ACC since are reported, not copied; report "
        "entries that name no photo ('*', 'batch ...') are reported as not replayable. Writes "
        "report-replay.json beside the window's report. Exit 1 when a photo still failed or an entry "
        "was not replayable.",
    )
    replay.add_argument(
        "--start", required=True, help="window start, ISO 8601, as the DAG run had it (UTC when no zone)"
    )
    replay.add_argument("--end", required=True, help="window end, ISO 8601 (exclusive)")
    replay.add_argument("--json", action="store_true", help="machine-readable output")
    replay.add_argument(
        "--project",
        action="append",
        metavar="ACC_PROJECT_ID",
        help="only the failures of this mapped ACC project (repeatable)",
    )
    replay.set_defaults(func=cmd_replay)

    follow = sub.add_parser(
        "follow-edits",
        help="carry ACC edits of copied photos (title, description, takenAt) over to BuildPass; report deletions",
        description="For the photos created in ACC in the last N days that were copied, compare what the "
        "mapping makes of the ACC record now (fileName, description, capturedAt) with what BuildPass shows, "
        "and PATCH the BuildPass photo with the fields that differ, and only those: a second run patches "
        "nothing. ACC wins over an edit made in BuildPass to those fields. Photos deleted in ACC are "
        "reported and left in BuildPass; with --delete-policy delete they are reported as failed, as "
        "BuildPass documents no way to delete one photo. Exit 1 when a photo could not be updated.",
    )
    follow.add_argument(
        "--days", type=_days, default=7, metavar="N", help="photos created in ACC in the last N days (default 7)"
    )
    follow.add_argument("--until", default=None, help="end of the period, ISO 8601 (default: now; UTC when no zone)")
    follow.add_argument(
        "--delete-policy",
        choices=("report", "delete"),
        default="report",
        help="photos deleted in ACC: report them (default), or delete them in BuildPass (not possible: "
        "no DELETE of one photo is documented; reported as failed)",
    )
    follow.add_argument("--dry-run", action="store_true", help="compare only: nothing patched, nothing written")
    follow.add_argument("--json", action="store_true", help="machine-readable output")
    follow.set_defaults(func=cmd_follow_edits)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on a usage error, 0 on --help
    with _logs_to_stderr():
        runtime.set_up_logging(args.verbose)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from acc_buildpass.errors import ConfigError, describe_error

    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        print(f"acc-buildpass {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"acc-buildpass {args.command}: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), _out.fileno())
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        print(f"acc-buildpass {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        print(f"acc-buildpass {args.command}: failed: {describe_error(exc)}", file=sys.stderr)
        return EXIT_PROBLEMS


if __name__ == "__main__":
    sys.exit(main())
