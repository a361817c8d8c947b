"""``acc-buildpass``: the operator's command line (check, plan, projects, backfill, replay, follow-edits, verify).

A thin layer: it reads the same configuration as the DAG through Airflow (the Variable
``acc_buildpass_config`` and the connections, from ``AIRFLOW_VAR_*``/``AIRFLOW_CONN_*``, a
secrets backend or the metadata DB) by way of :mod:`acc_buildpass.runtime`, calls the pipeline's
steps and renders what they return (:mod:`acc_buildpass.cli.render`).

Exit codes: 0 all good; 1 problems found (``check``), photos still failed (``replay``), a photo not
updated (``follow-edits``), BuildPass not matching ACC (``verify``), photos not copied
(``backfill``) or the work failed (an API or storage error); 2 a usage or configuration error
(bad arguments, a missing or invalid Variable or connection, a file that would be overwritten);
130 interrupted (Ctrl-C).

Everything but :mod:`acc_buildpass.runtime` (light until called) is imported inside the command
that needs it, so ``--help`` and a usage error answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from acc_buildpass import runtime
from acc_buildpass.settings import DEFAULT_POOL

if TYPE_CHECKING:
    from datetime import datetime

    from acc_buildpass.cli.progress import Progress
    from acc_buildpass.config import PipelineConfig
    from acc_buildpass.models import Window

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG, EXIT_INTERRUPTED = 0, 1, 2, 130
__all__ = ["EXIT_CONFIG", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_PROBLEMS", "UsageError", "build_parser", "main"]


Command = Callable[[argparse.Namespace], int]  # a subcommand: its arguments in, the exit code out
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"  # what add_subparsers returns


class UsageError(Exception):
    """Exit 2 with this message."""


# -- output ---------------------------------------------------------------------------------------


_out = sys.stdout  # the commands' own output; everything else (Airflow's logs) goes to stderr


def emit(text: str = "") -> None:
    print(text, file=_out, flush=True)


def note(text: str) -> None:
    """A line for the operator beside the output (where a file went, what is under way)."""
    print(text, file=sys.stderr)


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


def _emit_result(args: argparse.Namespace, result: Any, rendered: Callable[[], str]) -> None:
    """The result as JSON with ``--json``, else as rendered for a person."""
    emit(json.dumps(result, indent=1) if args.json else rendered())


# -- commands -------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Sign in to ACC (reusing a valid stored access token, else spending the refresh token once)
    and BuildPass, write and delete a probe object in the staging bucket, check every mapped ACC
    project and BuildPass project/folder, and look for the Airflow pool. One line per check: OK,
    PROBLEM (with what to fix) or SKIP. Exit 1 when any problem was found."""
    runtime.use_metadata_db()
    pool = args.pool or os.environ.get("ACC_BUILDPASS_POOL") or DEFAULT_POOL
    findings = runtime.check(pool, runtime.pool_exists)
    for finding in findings:
        emit(finding.line())
    problems = sum(f.problem for f in findings)
    emit(f"{problems} problem(s) found" if problems else "All checks passed")
    return EXIT_PROBLEMS if problems else EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """List the window's photos in ACC and look them up in the ledger. No bytes are staged, nothing
    is created, nothing is written to BuildPass."""
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import dry_run

    window = _window(args)
    runtime.use_metadata_db()
    with _progress("plan", every=args.progress_pages) as progress:
        _, plans = runtime.plan(window, args.project, progress)
    _emit_result(args, dry_run.plan_json(window, plans), lambda: render.render_plan(window, plans))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    """Read the window's report (written by the DAG's run of the window), fetch the current ACC
    record of every photo it lists as failed, and copy those photos, and only those, through the
    DAG's stage and publish steps: each photo lands in BuildPass exactly once (a photo already there
    is neither downloaded nor sent again). Photos deleted in ACC since are reported, not copied;
    report entries that name no photo ('*', 'batch ...') are reported as not replayable. Writes
    report-replay.json beside the window's report. Exit 1 when a photo still failed or an entry was
    not replayable."""
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import replay as replay_step

    return _run_window_step(args, "replay", runtime.replay, render.render_replay, replay_step.replay_ok, "report")


def cmd_backfill(args: argparse.Namespace) -> int:
    """Copy every photo created in [--start, --end), a range of any length (months of history), in
    this process: extracted and planned in batches of batch_size photos as the DAG plans a window,
    then each batch staged and published in turn, then the report (report.json and report.md under
    the range's window). The ledger is the DAG's: photos already in BuildPass are neither downloaded
    nor created again, and a later hourly run over these hours creates nothing. Progress on stderr.
    Exit 1 when any photo could not be copied (the report names each one and why; replay retries
    them)."""
    from acc_buildpass.pipeline import report

    return _run_window_step(
        args, "backfill", runtime.backfill, report.render, lambda result: not report.failures(result), "report"
    )


def cmd_projects(args: argparse.Namespace) -> int:
    """List ACC hubs and projects (Data Management) visible to the ACC connection's user, and the
    BuildPass builders known from the Variable and the connection (BuildPass documents no project
    listing). --write-config writes a starting Variable to edit."""
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import projects

    target = Path(args.write_config) if args.write_config else None
    if target is not None and target.exists() and not args.force:
        raise UsageError(f"{target} exists: pass --force to overwrite it")
    runtime.use_metadata_db()
    config = _config_if_any()
    acc_conn, bp_conn = _connection_ids(config)
    acc = runtime.build_acc(config, acc_conn)
    extra = _connection_extra(bp_conn)
    found = projects.discover(acc)
    builders = projects.known_builders(config, extra)
    if target is not None:  # first: the file is what was asked for, whatever becomes of stdout
        photos_projects = [p for _, hub_projects in found for p in hub_projects]
        _write_json(target, projects.starter_config(photos_projects, config, builders), force=args.force)
        note(
            f"Wrote {target}: {len(photos_projects)} ACC project(s); replace every '<...>' placeholder, drop the "
            "projects not to copy, then set it as the Variable acc_buildpass_config"
        )
    result = projects.projects_json(found, config, builders)
    _emit_result(args, result, lambda: render.render_projects(found, config, builders))
    return EXIT_OK


def cmd_follow_edits(args: argparse.Namespace) -> int:
    """For the photos created in ACC in the last N days that were copied, compare what the mapping
    makes of the ACC record now (fileName, description, capturedAt) with what BuildPass shows, and
    PATCH the BuildPass photo with the fields that differ, and only those: a second run patches
    nothing. ACC wins over an edit made in BuildPass to those fields. Photos deleted in ACC are
    reported and left in BuildPass; with --delete-policy delete they are reported as failed, as
    BuildPass documents no way to delete one photo. Exit 1 when a photo could not be updated."""
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import follow_edits as follow

    until = _until(args)
    runtime.use_metadata_db()
    config = runtime.load_config()
    acc = runtime.build_acc(config, config.acc_conn_id)
    buildpass = runtime.build_buildpass(config, config.buildpass_conn_id)
    store = runtime.build_store(config)

    def progress(edits: Any) -> None:
        counts = ", ".join(f"{n} {what}" for what, n in edits.counts().items() if n)
        note(f"follow-edits: {edits.mapping.label}: {counts or 'nothing listed'}")

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
    _emit_result(args, result, lambda: render.render_follow_edits(result))
    return EXIT_PROBLEMS if result["totals"]["failed"] else EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Read BuildPass back (one listing of each mapped BuildPass project, whatever folder a photo is
    in) and reconcile every eligible ACC photo of the window, listed as extraction lists it: linked
    by externalSourceId where BuildPass returns one, else by the photo id or attachment key the
    ledger recorded. Reports apart the photos absent from BuildPass, doubled, of the wrong size,
    BuildPass photos of the window linked to no eligible ACC photo (deleted in ACC since), and a
    listing that looks capped. Nothing is written to BuildPass; verify.json is written beside the
    window's report. Exit 1 when anything does not match or the listing may be incomplete."""
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import verify as verify_step

    return _run_window_step(args, "verify", runtime.verify, render.render_verify, verify_step.verify_ok, "result")


# -- what the commands share ----------------------------------------------------------------------


def _window(args: argparse.Namespace) -> Window:
    from acc_buildpass.models import Window, parse_time

    try:
        return Window(parse_time(args.start), parse_time(args.end))
    except ValueError as exc:
        raise UsageError(f"--start/--end: {exc}; give ISO 8601 times, start before end") from None


def _run_window_step(
    args: argparse.Namespace,
    name: str,
    run: Callable[[Window, list[str] | None, Progress | None], tuple[dict[str, Any], str]],
    rendered: Callable[[dict[str, Any]], str],
    ok: Callable[[dict[str, Any]], bool],
    what: str,
) -> int:
    """Run a step over the arguments' window that writes its result beside the window's report
    (replay, verify): say where it went, show the result; exit 0 when ``ok``, else 1."""
    window = _window(args)
    runtime.use_metadata_db()
    with _progress(name) as progress:
        result, written = run(window, args.project, progress)
    note(f"{name}: {what} written to {written}")
    _emit_result(args, result, lambda: rendered(result))
    return EXIT_OK if ok(result) else EXIT_PROBLEMS


def _until(args: argparse.Namespace) -> datetime:
    from datetime import UTC, datetime

    from acc_buildpass.models import parse_time

    try:
        return parse_time(args.until) if args.until else datetime.now(UTC)
    except ValueError as exc:
        raise UsageError(f"--until: {exc}; give an ISO 8601 time") from None


def _progress(prefix: str, every: int = 1) -> contextlib.AbstractContextManager[Progress | None]:
    """A bar on stderr when it is a terminal, else a line every ``every`` steps (0: none)."""
    from acc_buildpass.cli.progress import Progress

    if every == 0:
        return contextlib.nullcontext(None)
    return Progress(prefix, stream=sys.stderr, every=every)


def _config_if_any() -> PipelineConfig | None:
    """The Variable, or None with a note: ``projects`` is how a first Variable gets written."""
    from acc_buildpass.errors import ConfigError

    try:
        return runtime.load_config()
    except ConfigError as exc:
        note(f"note: {exc}; listing with the default connection ids")
        return None


def _connection_ids(config: PipelineConfig | None) -> tuple[str, str]:
    """(ACC, BuildPass) connection ids: the Variable's, else the defaults."""
    from acc_buildpass.config import PipelineConfig

    chosen = config or PipelineConfig
    return chosen.acc_conn_id, chosen.buildpass_conn_id


def _connection_extra(conn_id: str) -> dict[str, Any]:
    """The BuildPass connection's ``extra`` (it may name builders), or nothing when it is not set."""
    from acc_buildpass.errors import ConfigError

    try:
        extra: dict[str, Any] = runtime.require_connection(conn_id).extra_dejson
    except ConfigError:
        return {}
    return extra


def _write_json(path: Path, payload: Any, *, force: bool) -> None:
    """Write ``payload`` to ``path``: never over an existing file unless ``force``, then atomically.

    :raises UsageError: the file exists (without ``force``) or cannot be written
    """
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    try:
        if force:
            _replace(path, text)
            return
        with open(path, "x", encoding="utf-8") as out:  # never replaces a file that appeared meanwhile
            out.write(text)
    except FileExistsError:
        raise UsageError(f"{path} exists: pass --force to overwrite it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _replace(path: Path, text: str) -> None:
    """Write a temporary file beside ``path`` and rename it over: a reader sees the old or the new."""
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


# -- parser ---------------------------------------------------------------------------------------


def _non_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text!r}")
    return int(text)


def _days(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 366:
        raise argparse.ArgumentTypeError(f"expected a whole number of days from 1 to 366, got {text!r}")
    return int(text)


def _command(sub: Subcommands, name: str, func: Command, summary: str) -> argparse.ArgumentParser:
    """The subcommand ``name`` running ``func``: ``summary`` in the command list, ``func``'s
    docstring as its ``--help`` description (argparse joins the docstring's lines)."""
    parser = sub.add_parser(name, help=summary, description=func.__doc__)
    parser.set_defaults(func=func)
    return parser


def _add_window(parser: argparse.ArgumentParser, start_help: str) -> None:
    parser.add_argument("--start", required=True, help=start_help)
    parser.add_argument("--end", required=True, help="window end, ISO 8601 (exclusive)")


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _add_project(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--project", action="append", metavar="ACC_PROJECT_ID", help=help_text)


def _add_check(sub: Subcommands) -> None:
    check = _command(
        sub, "check", cmd_check, "verify connections, bucket, project mappings and pool before anything moves"
    )
    check.add_argument(
        "--pool", default=None, help=f"pool to look for (default: $ACC_BUILDPASS_POOL or {DEFAULT_POOL})"
    )


def _add_plan(sub: Subcommands) -> None:
    plan = _command(
        sub, "plan", cmd_plan, "dry run of a window: photos and bytes to copy, already in BuildPass, skipped and why"
    )
    _add_window(plan, "window start, ISO 8601 (inclusive; UTC when no zone)")
    _add_json(plan)
    plan.add_argument(
        "--progress-pages",
        type=_non_negative,
        default=10,
        metavar="N",
        help="progress on stderr: a bar on a terminal, else a line every N pages of 50 (0: none; default 10)",
    )
    _add_project(plan, "only this mapped ACC project (repeatable)")


def _add_projects(sub: Subcommands) -> None:
    projects = _command(
        sub, "projects", cmd_projects, "list the ACC projects the credentials can see and the BuildPass builders known"
    )
    _add_json(projects)
    projects.add_argument(
        "--write-config", metavar="PATH", help="write a starting acc_buildpass_config JSON (placeholders to edit)"
    )
    projects.add_argument("--force", action="store_true", help="let --write-config overwrite an existing file")


def _window_command(sub: Subcommands, name: str, func: Command, summary: str, start: str, project: str) -> None:
    """A command over one window (--start, --end), with --json and --project."""
    parser = _command(sub, name, func, summary)
    _add_window(parser, start)
    _add_json(parser)
    _add_project(parser, project)


def _add_backfill(sub: Subcommands) -> None:
    _window_command(
        sub,
        "backfill",
        cmd_backfill,
        "copy a range of any length (months of history) in this process, exactly once",
        "range start, ISO 8601 (inclusive; UTC when no zone)",
        "only this mapped ACC project (repeatable)",
    )


def _add_replay(sub: Subcommands) -> None:
    _window_command(
        sub,
        "replay",
        cmd_replay,
        "retry exactly the photos a window's report lists as failed; report what still fails",
        "window start, ISO 8601, as the DAG run had it (UTC when no zone)",
        "only the failures of this mapped ACC project (repeatable)",
    )


def _add_follow_edits(sub: Subcommands) -> None:
    follow = _command(
        sub,
        "follow-edits",
        cmd_follow_edits,
        "carry ACC edits of copied photos (title, description, takenAt) over to BuildPass; report deletions",
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
    _add_json(follow)


def _add_verify(sub: Subcommands) -> None:
    _window_command(
        sub,
        "verify",
        cmd_verify,
        "read BuildPass back: photos of a window absent, doubled, of the wrong size or unlinked",
        "window start, ISO 8601 (inclusive; UTC when no zone)",
        "only this mapped ACC project (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="acc-buildpass",
        description="Operate the ACC → BuildPass photo copy: check the setup, plan a window, discover projects, "
        "copy months of history, replay a window's failed photos, follow ACC edits of copied photos, "
        "verify a window against BuildPass. "
        "Reads the same configuration as the DAG (Variable acc_buildpass_config, connections acc_default, "
        "buildpass_default, acc_buildpass_staging) through Airflow.",
        epilog="Exit codes: 0 ok; 1 problems found, photos still failed, BuildPass not matching ACC or the work "
        "failed; 2 usage or "
        "configuration error.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the package's logs on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_check, _add_plan, _add_projects, _add_backfill, _add_replay, _add_follow_edits, _add_verify):
        add(sub)
    return parser


# -- running --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # exits 2 on a usage error, 0 on --help
    with _logs_to_stderr():
        runtime.set_up_logging(args.verbose)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the chosen command and turn what stopped it into an exit code and one line on stderr."""
    from acc_buildpass.errors import ConfigError, describe_error

    said = f"acc-buildpass {args.command}:"
    try:
        code: int = args.func(args)
        return code
    except UsageError as exc:
        note(f"{said} {exc}")
        return EXIT_CONFIG
    except ConfigError as exc:
        note(f"{said} configuration error: {exc}")
        return EXIT_CONFIG
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        _silence(_out)
        return EXIT_PROBLEMS
    except KeyboardInterrupt:
        note(f"{said} interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.verbose:
            raise
        note(f"{said} failed: {describe_error(exc)}")
        return EXIT_PROBLEMS


def _silence(stream: Any) -> None:
    """Point ``stream``'s file at /dev/null, so flushing it at exit raises no second BrokenPipeError."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
