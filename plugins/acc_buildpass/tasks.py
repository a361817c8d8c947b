"""What each DAG task does: read the configuration, build clients from hooks, call a step.

The only module of the pipeline that knows Airflow's context; the steps do not.
"""

from __future__ import annotations

import functools
import json
import logging
import resource
from collections.abc import Callable
from typing import Any, TypeVar

from acc_buildpass.config import VARIABLE, PipelineConfig, resolve_window
from acc_buildpass.errors import ConfigError
from acc_buildpass.pipeline import extract as extract_step
from acc_buildpass.pipeline import publish as publish_step
from acc_buildpass.pipeline import report as report_step
from acc_buildpass.pipeline import stage as stage_step
from acc_buildpass.pipeline.batches import Batch
from acc_buildpass.storage import Layout, Store

log = logging.getLogger(__name__)
T = TypeVar("T", bound=Callable[..., Any])


class CopyFailed(Exception):
    """Some photos could not be copied; the message names them and why."""


def final_on_config_error(step: T) -> T:
    """A configuration error fails the task at once: retrying cannot fix it, the operator can."""

    @functools.wraps(step)
    def run(*args: Any, **kwargs: Any) -> Any:
        at_start = _rss_mb()
        try:
            return step(*args, **kwargs)
        except ConfigError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"Configuration error: {exc}") from None
        finally:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            log.info("memory of this task process: %.0f MB when %s began, peak %.0f MB", at_start, step.__name__, peak)

    return run  # type: ignore[return-value]


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() / 2**20
    except OSError:  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_config() -> PipelineConfig:
    from airflow.sdk import Variable

    try:
        raw = Variable.get(VARIABLE)
    except Exception:  # the SDK raises its own not-found type; the fix is the same
        raise ConfigError(
            f"Variable {VARIABLE} is not set: create it with the staging bucket and the project mappings "
            "(see README, 'Configuration')"
        ) from None
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise ConfigError(f"Variable {VARIABLE} is not valid JSON: {exc}") from None
    return PipelineConfig.from_variable(parsed)


def _store(config: PipelineConfig) -> Store:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    # Object storage restarts and throttles too: ride out a minute or so before the task fails.
    retries = Config(retries={"max_attempts": 10, "mode": "standard"}, connect_timeout=10, read_timeout=120)
    s3 = S3Hook(aws_conn_id=config.staging_conn_id, config=retries).get_conn()
    return Store(s3, Layout(config.staging_bucket, config.staging_prefix))


def _acc(config: PipelineConfig) -> Any:
    from acc_buildpass.hooks.acc import AccHook

    return AccHook(config.acc_conn_id, policy=config.retry).get_conn()


def _buildpass(config: PipelineConfig) -> Any:
    from acc_buildpass.hooks.buildpass import BuildPassHook

    return BuildPassHook(config.buildpass_conn_id, policy=config.retry).get_conn()


@final_on_config_error
def extract(context: Any) -> list[dict[str, Any]]:
    config = load_config()
    dag_run = context.get("dag_run")
    window = resolve_window(
        getattr(dag_run, "conf", None) or {},
        context.get("data_interval_start"),
        context.get("data_interval_end"),
    )
    log.info("Copying photos created in [%s, %s)", window.start.isoformat(), window.end.isoformat())
    batches = extract_step.extract(_acc(config), _buildpass(config), _store(config), config, window)
    return [b.to_xcom() for b in batches]


@final_on_config_error
def stage(raw_batch: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = Batch.from_xcom(raw_batch)
    context["batch_label"] = batch.label
    config = load_config()
    store = _store(config)
    outcomes = stage_step.stage_batch(_acc(config), store, config, batch)
    store.put_json(store.layout.batch_outcome(batch.window, batch.index, "stage"), outcomes)
    return raw_batch


@final_on_config_error
def publish(raw_batch: dict[str, Any], context: Any) -> dict[str, Any]:
    batch = Batch.from_xcom(raw_batch)
    context["batch_label"] = batch.label
    config = load_config()
    store = _store(config)
    outcomes = publish_step.publish_batch(_buildpass(config), store, config, batch)
    store.put_json(store.layout.batch_outcome(batch.window, batch.index, "publish"), outcomes)
    return {"index": batch.index, "count": len(outcomes)}


@final_on_config_error
def report(raw_batches: list[dict[str, Any]] | None, context: Any, manifest: Any = None) -> dict[str, Any]:
    """Reconcile; when every photo was copied, ``manifest`` (an outlet Asset) gets an event whose
    extra says where the window's manifest parts and report are (keys only, never a secret)."""
    if raw_batches is None:
        raise CopyFailed("extraction did not finish, nothing was copied: see the extract task's log")
    config = load_config()
    batches = [Batch.from_xcom(b) for b in raw_batches]
    dag_run = context.get("dag_run")
    window = resolve_window(
        getattr(dag_run, "conf", None) or {}, context.get("data_interval_start"), context.get("data_interval_end")
    )
    store = _store(config)
    result = report_step.build(store, config, window, batches, run_id=context.get("run_id"))
    log.info(
        "Reconciliation report (s3://%s/%s):\n%s",
        store.bucket,
        store.layout.report(window, "md"),
        report_step.render(result),
    )
    if manifest is not None:
        context["outlet_events"][manifest].extra = {
            "bucket": store.bucket,
            "window": result["window"],
            "manifests": [key for batch in batches for key in batch.parts],
            "report": store.layout.report(window, "json"),
            "totals": result["totals"],
        }
    failed = report_step.failures(result)
    if failed:
        shown = "; ".join(failed[:20]) + (f"; and {len(failed) - 20} more" if len(failed) > 20 else "")
        raise CopyFailed(f"{len(failed)} photo(s) could not be copied: {shown}")
    return result["totals"]


class EditsNotFollowed(Exception):
    """Some ACC edits could not be carried over to BuildPass; the message names the photos and why."""


@final_on_config_error
def follow_edits(params: Any) -> dict[str, Any]:
    """The DAG ``acc_buildpass_follow_edits``: its params (days, delete_policy, dry_run) in, the
    summary out (ids, counts, field names and reasons; never a secret). Fails, after logging the
    summary, when a photo could not be updated."""
    from datetime import UTC, datetime

    from acc_buildpass.pipeline import follow_edits as follow

    config = load_config()
    policy = params.get("delete_policy") or "report"
    try:
        days = int(params.get("days") or 7)
        follow.period(days, datetime.now(UTC))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"param days: {exc}") from None
    if policy not in follow.DELETE_POLICIES:
        raise ConfigError(f"param delete_policy must be one of {', '.join(follow.DELETE_POLICIES)}, not {policy!r}")
    result = follow.follow_edits(
        _acc(config),
        _buildpass(config),
        _store(config),
        config,
        days,
        datetime.now(UTC),
        delete_policy=policy,
        dry_run=bool(params.get("dry_run")),
    )
    log.info("Follow edits:\n%s", follow.render(result))
    failed = follow.failures(result)
    if failed:
        shown = "; ".join(failed[:20]) + (f"; and {len(failed) - 20} more" if len(failed) > 20 else "")
        raise EditsNotFollowed(f"{len(failed)} photo(s) could not be updated: {shown}")
    return result
