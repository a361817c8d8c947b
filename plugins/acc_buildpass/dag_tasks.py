"""What each DAG task does: Airflow's context in, a step called, XCom out.

The configuration, the clients and the store come from :mod:`acc_buildpass.runtime`, as for the
command line; the steps know nothing of Airflow. The DAG files import this module at parse time,
so the steps (and the S3 and HTTP libraries under them) are imported only when a task runs.
"""

from __future__ import annotations

import functools
import logging
import resource
import time
from collections.abc import Callable
from typing import Any, TypeVar

from acc_buildpass import runtime, settings
from acc_buildpass.config import resolve_window
from acc_buildpass.errors import ConfigError
from acc_buildpass.models import Batch, Window

log = logging.getLogger(__name__)
WINDOW_KEYS = settings.WINDOW_KEYS
XCOM_PHOTOS = 100  # photos named in a follow-edits XCom
T = TypeVar("T", bound=Callable[..., Any])


class CopyFailed(Exception):
    """Some photos could not be copied; the message names them and why."""


def final_on_config_error(step: T) -> T:
    """A configuration error fails the task at once: retrying cannot fix it, the operator can."""

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> Any:
        at_start, cpu_at_start = _rss_mb(), time.process_time()
        try:
            return step(*args, **kwargs)
        except ConfigError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"Configuration error: {exc}") from None
        finally:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            log.info("memory of this task process: %.0f MB when %s began, peak %.0f MB", at_start, step.__name__, peak)
            cpu = time.process_time()
            log.info(
                "CPU of this task process: %.1f s before %s began, %.1f s in it",
                cpu_at_start,
                step.__name__,
                cpu - cpu_at_start,
            )

    return run  # type: ignore[return-value]


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_window(context: Any) -> Window:
    """The run's window: ``window_start``/``window_end`` from the trigger form (DAG params) or the
    run conf (the conf wins, whatever ``dag_run_conf_overrides_params`` says), else the run's data
    interval (scheduled runs, and manual runs that leave both empty).

    :raises ConfigError: only one bound given, or a bad window
    """
    given = {k: v for k, v in (context.get("params") or {}).items() if k in WINDOW_KEYS}
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    given.update({k: v for k, v in conf.items() if k in WINDOW_KEYS})
    return resolve_window(given, context.get("data_interval_start"), context.get("data_interval_end"))


@final_on_config_error
def extract(context: Any, copied: Any = None, manifest: Any = None) -> list[dict[str, Any]]:
    """List the window and plan its batches; copy a small window (at most ``batch_size`` photos)
    here, in this one task process.

    :param copied: the task's outlet AssetAlias, given ``manifest`` when the window is copied here
    :returns: the batches for the mapped tasks, or ``[]`` when this task copied the whole window
        and wrote its report (the DAG's short-circuit then skips the batches and the report)
    :raises AirflowFailException: photos of a window copied here failed (the report names them)
    """
    from acc_buildpass.pipeline import copy
    from acc_buildpass.pipeline import extract as extract_step
    from acc_buildpass.pipeline import report as report_step

    config = runtime.load_config()
    window = run_window(context)
    log.info("Copying photos created in [%s, %s)", window.start.isoformat(), window.end.isoformat())
    store = runtime.build_store(config)
    with runtime.clients(config) as (acc, buildpass):
        batches = extract_step.extract(acc, buildpass, store, config, window)
        if sum(b.count for b in batches) > config.batch_size:
            return [b.to_xcom() for b in batches]
        copy.copy_batches(acc, buildpass, store, config, batches)
    result = _reconcile(store, config, window, batches, context)
    _fail_naming(report_step.failures(result), final=True)
    _announce(context, copied, manifest, store, window, batches, result)
    return []


def _fail_naming(failed: list[str], *, final: bool = False) -> None:
    """Fail the task when photos could not be copied, naming them (the first 20) and why; ``final``:
    without Airflow's retries (each photo had the policy's retries already; ``replay`` retries them)."""
    if not failed:
        return
    shown = "; ".join(failed[:20]) + (f"; and {len(failed) - 20} more" if len(failed) > 20 else "")
    message = f"{len(failed)} photo(s) could not be copied: {shown}"
    if final:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(message)
    raise CopyFailed(message)


@final_on_config_error
def copy_batch(raw_batch: dict[str, Any], context: Any) -> dict[str, Any]:
    """Copy one batch of a big window in its mapped task: stage and publish at once."""
    from acc_buildpass.pipeline import copy

    batch = Batch.from_xcom(raw_batch)
    context["batch_label"] = batch.label
    config = runtime.load_config()
    store = runtime.build_store(config)
    with runtime.clients(config) as (acc, buildpass):
        outcomes = copy.copy_batch(acc, buildpass, store, config, batch)
    return {"index": batch.index, "count": len(outcomes)}


def _reconcile(store: Any, config: Any, window: Window, batches: list[Batch], context: Any) -> dict[str, Any]:
    """Build the window's report (``report.json``, the run's Copy report tab) and log it."""
    from acc_buildpass.pipeline import report as report_step

    result: dict[str, Any] = report_step.build(store, config, window, batches, run_id=context.get("run_id"))
    log.info(
        "Reconciliation report (s3://%s/%s):\n%s",
        store.bucket,
        store.layout.report(window, "md"),
        report_step.render(result),
    )
    return result


def _announce(
    context: Any, copied: Any, manifest: Any, store: Any, window: Window, batches: list[Batch], result: dict[str, Any]
) -> None:
    """Every photo of the window is in BuildPass: an event of the Asset ``manifest``, through the
    task's outlet alias ``copied``, whose extra says where the window's manifest parts and report
    are (keys only, never a secret)."""
    if copied is None or manifest is None:
        return
    extra = {
        "bucket": store.bucket,
        "window": result["window"],
        "manifests": [key for batch in batches for key in batch.parts],
        "report": store.layout.report(window, "json"),
        "totals": result["totals"],
    }
    context["outlet_events"][copied].add(manifest, extra=extra)


@final_on_config_error
def report(
    raw_batches: list[dict[str, Any]] | None, context: Any, copied: Any = None, manifest: Any = None
) -> dict[str, Any]:
    """Reconcile a big window after its batch tasks; when every photo was copied, announce it
    (:func:`_announce`); else fail, naming the photos."""
    from acc_buildpass.pipeline import report as report_step

    config = runtime.load_config()
    window = run_window(context)
    store = runtime.build_store(config)
    if raw_batches is None:
        # extract failed; when it was copying a small window it wrote this run's report first
        written = store.get_json(store.layout.report(window, "json"))
        if isinstance(written, dict) and written.get("run_id") == context.get("run_id"):
            _fail_naming(report_step.failures(written))
        raise CopyFailed("extraction did not finish, nothing was copied: see the extract task's log")
    batches = [Batch.from_xcom(b) for b in raw_batches]
    result = _reconcile(store, config, window, batches, context)
    _fail_naming(report_step.failures(result))
    _announce(context, copied, manifest, store, window, batches, result)
    return result["totals"]  # type: ignore[no-any-return]


# -- the DAG acc_buildpass_operations: what `acc-buildpass check | plan | replay | verify` does, from a form --


@final_on_config_error
def operate(context: Any) -> dict[str, Any]:
    """Run the action the run's params ask for, through the same functions as ``acc-buildpass``.

    Logs the table the command prints; returns a summary (counts and object keys, never a
    secret); fails, without a retry, when check finds a problem, replay leaves photos failed or
    verify finds BuildPass not matching ACC.
    A plan is also written beside the window's report, where the run's Copy report tab shows it.
    """
    from acc_buildpass.settings import ACTIONS, DEFAULT_ACTION

    params = context.get("params") or {}
    action = params.get("action") or DEFAULT_ACTION
    if action not in ACTIONS:
        raise ConfigError(f"param 'action' must be one of {', '.join(ACTIONS)}, not {action!r}")
    projects = [str(p).strip() for p in params.get("projects") or () if str(p).strip()] or None
    if action == "check":
        return _operate_check()
    window = _operation_window(params, action)
    log.info("%s of the photos created in [%s, %s)", action, window.start.isoformat(), window.end.isoformat())
    if action == "plan":
        return _operate_plan(window, projects, context.get("run_id"))
    if action == "verify":
        return _operate_verify(window, projects)
    return _operate_replay(window, projects)


def _operation_window(params: Any, action: str) -> Window:
    from acc_buildpass.models import parse_time

    start, end = params.get("window_start"), params.get("window_end")
    if not start or not end:
        raise ConfigError(f"{action} needs a window: give both 'window_start' and 'window_end' (ISO 8601)")
    try:
        return Window(parse_time(start), parse_time(end))
    except ValueError as exc:
        raise ConfigError(f"invalid window: {exc}; give ISO 8601 'window_start' < 'window_end'") from None


def _operate_check() -> dict[str, Any]:
    from airflow.sdk.exceptions import AirflowFailException

    pool = settings.pool()
    findings = runtime.check(pool, runtime.pool_lookup_in_task(pool))
    problems = [f.line() for f in findings if f.problem]
    log.info(
        "Check:\n%s\n%s",
        "\n".join(f.line() for f in findings),
        f"{len(problems)} problem(s) found" if problems else "All checks passed",
    )
    if problems:
        raise AirflowFailException(f"{len(problems)} problem(s) found: " + "; ".join(problems))
    return {"action": "check", "checks": len(findings), "problems": 0}


def _operate_plan(window: Window, projects: list[str] | None, run_id: str | None) -> dict[str, Any]:
    from acc_buildpass.cli import render
    from acc_buildpass.cli.progress import Progress
    from acc_buildpass.pipeline import dry_run

    store, plans = runtime.plan(window, projects, Progress("plan", write_line=log.info, every=10))
    data = dry_run.plan_json(window, plans)
    key = store.layout.plan_report(window)
    store.put_json(key, {**data, "run_id": run_id})
    log.info("Plan (s3://%s/%s):\n%s", store.bucket, key, render.render_plan(window, plans))
    return {"action": "plan", "window": data["window"], "totals": data["totals"], "plan": key}


def _operate_replay(window: Window, projects: list[str] | None) -> dict[str, Any]:
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import replay as replay_step

    def failure(result: dict[str, Any]) -> str | None:
        totals = result["totals"]
        return (
            None
            if replay_step.replay_ok(result)
            else (
                f"{totals[replay_step.STILL_FAILED]} photo(s) still failed, "
                f"{totals[replay_step.NOT_REPLAYABLE]} report entr(ies) not replayable"
            )
        )

    return _operate_window_step("replay", window, projects, runtime.replay, render.render_replay, failure)


def _operate_verify(window: Window, projects: list[str] | None) -> dict[str, Any]:
    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import verify as verify_step

    def failure(result: dict[str, Any]) -> str | None:
        totals = result["totals"]
        wrong = [f"{totals[p]} {p.replace('_', ' ')}" for p in verify_step.PROBLEMS if totals[p]]
        if totals["listing_incomplete"]:
            wrong.append(f"{totals['listing_incomplete']} listing(s) possibly incomplete")
        return None if verify_step.verify_ok(result) else f"BuildPass does not match ACC ({', '.join(wrong)})"

    return _operate_window_step("verify", window, projects, runtime.verify, render.render_verify, failure)


def _operate_window_step(
    action: str,
    window: Window,
    projects: list[str] | None,
    run: Callable[..., tuple[dict[str, Any], str]],
    rendered: Callable[[dict[str, Any]], str],
    failure: Callable[[dict[str, Any]], str | None],
) -> dict[str, Any]:
    """Run replay or verify as the command does, log its table, and fail without a retry when
    ``failure`` names what is wrong: a summary (counts and where the result was written)."""
    from airflow.sdk.exceptions import AirflowFailException

    from acc_buildpass.cli.progress import Progress

    result, written = run(window, projects, Progress(action, write_line=log.info))
    log.info("%s (%s):\n%s", action.capitalize(), written, rendered(result))
    wrong = failure(result)
    if wrong:
        raise AirflowFailException(f"{action} of window {window.id}: {wrong}; see the table above")
    return {"action": action, "window": result["window"], "totals": result["totals"], "report": written}


class EditsNotFollowed(Exception):
    """Some ACC edits could not be carried over to BuildPass; the message names the photos and why."""


@final_on_config_error
def follow_edits(params: Any) -> dict[str, Any]:
    """The DAG ``acc_buildpass_follow_edits``: its params (days, delete_policy, dry_run) in, the
    summary out (ids, counts, field names and reasons; never a secret). Fails, after logging the
    summary, when a photo could not be updated."""
    from datetime import UTC, datetime

    from acc_buildpass.cli import render
    from acc_buildpass.pipeline import follow_edits as follow

    config = runtime.load_config()
    policy = params.get("delete_policy") or "report"
    try:
        days = int(params.get("days") or 7)
        follow.period(days, datetime.now(UTC))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"param days: {exc}") from None
    if policy not in settings.DELETE_POLICIES:
        raise ConfigError(f"param delete_policy must be one of {', '.join(settings.DELETE_POLICIES)}, not {policy!r}")
    with runtime.clients(config) as (acc, buildpass):
        result = follow.follow_edits(
            acc,
            buildpass,
            runtime.build_store(config),
            config,
            days,
            datetime.now(UTC),
            delete_policy=policy,
            dry_run=bool(params.get("dry_run")),
        )
    log.info("Follow edits:\n%s", render.render_follow_edits(result))
    failed = follow.failures(result)
    if failed:
        shown = "; ".join(failed[:20]) + (f"; and {len(failed) - 20} more" if len(failed) > 20 else "")
        raise EditsNotFollowed(f"{len(failed)} photo(s) could not be updated: {shown}")
    # The XCom stays small whatever the number of edits: counts in full, the first photos by name
    # (the task log above lists them all).
    listed = result["photos"][:XCOM_PHOTOS]
    return {**result, "photos": listed, "photos_not_listed": len(result["photos"]) - len(listed)}
