"""The only module that knows how Airflow hands out the configuration, the connections and the
S3 store, for the package's three kinds of process:

- a **task** (the Task SDK: Variable and connections from the API server; no metadata DB),
- the api-server's **UI** plugin (the Copy report tab: the metadata DB, a person waiting),
- the **command line** ``acc-buildpass`` (the metadata DB when it can be read: ``use_metadata_db``).

It also holds the operator's commands (check, plan, replay, verify), which ``acc-buildpass`` and the DAG
``acc_buildpass_operations`` both run, so a check is the same whether typed or triggered.
Nothing here prints: the caller decides where the table and the progress go. Imports are lazy so
that ``acc-buildpass --help`` starts fast.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from acc_buildpass.errors import ConfigError
from acc_buildpass.settings import DEFAULT_POOL, VARIABLE

if TYPE_CHECKING:
    from acc_buildpass.cli.progress import Progress
    from acc_buildpass.clients.acc import AccClient
    from acc_buildpass.clients.buildpass import BuildPassClient
    from acc_buildpass.clients.retry import RetryPolicy
    from acc_buildpass.config import PipelineConfig
    from acc_buildpass.models import Window
    from acc_buildpass.pipeline.checks import Finding
    from acc_buildpass.pipeline.dry_run import ProjectPlan
    from acc_buildpass.storage import Store

log = logging.getLogger(__name__)


# -- the Variable --------------------------------------------------------------------------------


class VariableNotSet(ConfigError):
    """The Variable ``acc_buildpass_config`` is not set anywhere Airflow looks."""


def parse_config(raw: Any) -> PipelineConfig:
    """The Variable's value (JSON text, or what a secrets backend already decoded), checked.

    :raises ConfigError: one line naming the key to fix, or where the JSON breaks
    """
    from acc_buildpass.config import PipelineConfig

    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as exc:
        raise ConfigError(f"Variable {VARIABLE} is not valid JSON: {exc}") from None
    return PipelineConfig.from_variable(parsed)


def load_config() -> PipelineConfig:
    """The Variable, as a task or the command line reads it (the Task SDK: environment, secrets
    backends, and for the command line the metadata DB).

    :raises VariableNotSet: it is not set
    :raises ConfigError: what to fix in it
    """
    from airflow.sdk import Variable

    try:
        raw = Variable.get(VARIABLE)
    except Exception:  # the SDK raises its own not-found type; the fix is the same
        raise VariableNotSet(
            f"Variable {VARIABLE} is not set: create it with the staging bucket and the project mappings "
            "(see README, 'Configuration')"
        ) from None
    return parse_config(raw)


def load_config_in_api_server() -> PipelineConfig:
    """The Variable, as the api-server reads it (environment, secrets backends, metadata DB).

    :raises VariableNotSet: it is not set
    :raises ConfigError: what to fix in it
    """
    from airflow.models.variable import Variable

    raw = Variable.get(VARIABLE, default_var=None)
    if raw is None:
        raise VariableNotSet(f"Variable {VARIABLE} is not set")
    return parse_config(raw)


# -- connections, clients and the staging store ----------------------------------------------------


def require_connection(conn_id: str) -> Any:
    """:raises ConfigError: the connection is not defined anywhere Airflow looks"""
    from acc_buildpass.hooks.connections import require_connection as require

    return require(conn_id)


def _policy(config: PipelineConfig | None, quick: bool) -> RetryPolicy:
    from acc_buildpass.clients.retry import RetryPolicy

    if quick:  # check answers in seconds; the DAG's policy may wait minutes for a dead host
        return RetryPolicy(attempts=3, initial_wait=0.5, max_wait=4, max_retry_after=10)
    return config.retry if config is not None else RetryPolicy()


def build_acc(config: PipelineConfig | None, conn_id: str, *, quick: bool = False) -> AccClient:
    """The ACC client of connection ``conn_id``, with the Variable's retry policy (or check's).

    :raises ConfigError: the connection is not defined, or its host cannot be used
    """
    from acc_buildpass.hooks.acc import AccHook

    return AccHook(conn_id, policy=_policy(config, quick)).get_conn()


def build_buildpass(config: PipelineConfig | None, conn_id: str, *, quick: bool = False) -> BuildPassClient:
    """:raises ConfigError: the connection is not defined, or its host cannot be used"""
    from acc_buildpass.hooks.buildpass import BuildPassHook

    return BuildPassHook(conn_id, policy=_policy(config, quick)).get_conn()


def build_store(config: PipelineConfig, profile: str = "task") -> Store:
    """The staging store of the Variable's bucket and prefix, through the staging connection.

    :param profile: ``task`` (the DAGs' tasks and the command line), ``check`` or ``ui``: how
        hard each S3 call tries (see :mod:`acc_buildpass.hooks.staging`)
    :raises ConfigError: the staging connection is not defined
    """
    from acc_buildpass.hooks.staging import PROFILES, staging_store
    from acc_buildpass.storage import Layout

    layout = Layout(config.staging_bucket, config.staging_prefix)
    return staging_store(config.staging_conn_id, layout, PROFILES[profile])


@contextmanager
def clients(config: PipelineConfig, *, acc: bool = True, buildpass: bool = True) -> Iterator[tuple[Any, Any]]:
    """The API clients a task or a command needs, closed when it is done: (ACC, BuildPass), None
    for one not asked for.

    :raises ConfigError: a connection is not defined, or its host cannot be used
    """
    with ExitStack() as opened:
        acc_client = opened.enter_context(build_acc(config, config.acc_conn_id)) if acc else None
        bp_client = opened.enter_context(build_buildpass(config, config.buildpass_conn_id)) if buildpass else None
        yield acc_client, bp_client


# -- the pool ------------------------------------------------------------------------------------


def pool_exists(name: str) -> bool:
    """:raises Exception: the metadata DB cannot be read (not reachable, not migrated, or a task
    process of Airflow 3, which has no database access)"""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(Pool.pool).where(Pool.pool == name)) is not None


def pool_lookup_in_task(pool: str) -> Callable[[str], bool] | None:
    """How a task looks up the pool for ``check``: Airflow 3 keeps task processes away from the
    metadata DB, so where the pool cannot be read, check skips it rather than report the DB down."""
    try:
        exists = pool_exists(pool)
    except Exception as exc:
        log.info("pool %s not readable from this task (%s): skipped", pool, type(exc).__name__)
        return None
    return lambda _: exists


def select_projects(config: PipelineConfig, acc_project_ids: Collection[str] | None) -> PipelineConfig:
    """The configuration narrowed to some of its mappings (all of them when none are named).

    :raises ConfigError: an id that the Variable does not map
    """
    if not acc_project_ids:
        return config
    wanted = list(dict.fromkeys(acc_project_ids))
    mapped = {m.acc_project_id for m in config.projects}
    unknown = [p for p in wanted if p not in mapped]
    if unknown:
        raise ConfigError(
            f"ACC project(s) {', '.join(unknown)} not mapped in the Variable acc_buildpass_config: "
            f"choose among {', '.join(sorted(mapped))}"
        )
    return replace(config, projects=tuple(m for m in config.projects if m.acc_project_id in wanted))


# -- the commands -------------------------------------------------------------------------------


def check(pool: str, pool_lookup: Callable[[str], bool] | None = pool_exists) -> list[Finding]:
    """Every check, one finding each: the Variable, both sign-ins (the ACC refresh token spent at
    most once), the bucket, every mapping on both sides, and the pool.

    :param pool_lookup: True when the pool exists; raises when it cannot tell; None where pools
        cannot be read at all (an Airflow 3 task): the pool is then skipped, saying where to look
    """
    from acc_buildpass.config import PipelineConfig
    from acc_buildpass.pipeline import checks

    findings: list[Finding] = []
    config: PipelineConfig | None = None
    try:
        config = load_config()
        findings.append(
            checks.Finding(checks.OK, "Variable acc_buildpass_config", f"{len(config.projects)} mapping(s)")
        )
    except ConfigError as exc:
        findings.append(checks.problem("Variable acc_buildpass_config", str(exc)))
    acc_conn = config.acc_conn_id if config else PipelineConfig.acc_conn_id
    bp_conn = config.buildpass_conn_id if config else PipelineConfig.buildpass_conn_id
    acc_build = partial(build_acc, config, acc_conn, quick=True)
    bp_build = partial(build_buildpass, config, bp_conn, quick=True)
    with ExitStack() as opened:
        acc = _signed_in(opened, findings, "ACC", acc_conn, acc_build, checks.check_acc_sign_in)
        buildpass = _signed_in(opened, findings, "BuildPass", bp_conn, bp_build, checks.check_buildpass_sign_in)
        findings.extend(_check_staging_and_mappings(config, acc, buildpass))
    findings.append(_check_pool(pool, pool_lookup))
    return findings


def _signed_in(
    opened: ExitStack,
    findings: list[Finding],
    api: str,
    conn_id: str,
    build: Callable[[], Any],
    sign_in: Callable[[Any, str], list[Finding]],
) -> Any:
    """A client whose sign-in check passed (closed with ``opened``), else None; the findings of
    building it and signing in are added to ``findings``."""
    from acc_buildpass.pipeline import checks

    try:
        made = opened.enter_context(build())
    except ConfigError as exc:
        findings.append(checks.problem(f"{api} connection {conn_id}", str(exc)))
        return None
    results = sign_in(made, conn_id)
    findings.extend(results)
    return None if any(f.problem for f in results) else made


def _check_staging_and_mappings(config: PipelineConfig | None, acc: Any, buildpass: Any) -> list[Finding]:
    from acc_buildpass.pipeline import checks

    if config is None:
        return [checks.Finding(checks.SKIP, "staging bucket and project mappings", "not checked: no valid Variable")]
    findings: list[Finding] = []
    try:
        store = build_store(config, "check")
    except ConfigError as exc:
        findings.append(checks.problem(f"staging connection {config.staging_conn_id}", str(exc)))
    else:
        findings.extend(checks.check_staging(store, config.staging_conn_id))
    findings.extend(checks.check_mappings(acc, buildpass, config))
    return findings


def _check_pool(pool: str, pool_lookup: Callable[[str], bool] | None) -> Finding:
    from acc_buildpass.pipeline import checks

    if pool_lookup is None:
        where = "not checked: a task cannot read the metadata DB; see `airflow pools list` or run `acc-buildpass check`"
        return checks.Finding(checks.SKIP, f"Airflow pool {pool}", where)
    return checks.check_pool(pool, pool_lookup)  # when the DB is down, this names its error once


def plan(
    window: Window, acc_project_ids: Collection[str] | None = None, progress: Progress | None = None
) -> tuple[Store, list[ProjectPlan]]:
    """A dry run of the window for every mapping, or the ones named: (the store, the plans).

    :param progress: told of every page listed (its total is set to the number of projects)
    :raises ConfigError: what to fix in the Variable, a connection or a mapping
    """
    from acc_buildpass.pipeline import dry_run

    config = select_projects(load_config(), acc_project_ids)
    position = {m.acc_project_id: i for i, m in enumerate(config.projects)}

    def on_page(mapping: Any, pages: int, records: int) -> None:
        if progress is not None:
            text = f"{mapping.acc_project_id}: {pages} pages, {records} records listed"
            progress.update(position[mapping.acc_project_id], text)

    with clients(config, buildpass=False) as (acc, _):
        store = build_store(config)
        if progress is not None:
            progress.total, progress.unit = len(config.projects), "projects"
        plans = dry_run.plan(acc, store, config, window, on_page)
    if progress is not None:
        found = sum(p.found for p in plans)
        progress.finish(f"{found} photo(s) listed in {sum(p.pages for p in plans)} page(s)")
    return store, plans


def _photos_done(progress: Progress | None) -> Callable[[int, int, str], None]:
    """Tell ``progress`` (when given) the photos done of the total after each batch."""

    def on_batch(done: int, total: int, label: str) -> None:
        if progress is not None:
            progress.total, progress.unit = total, "photos"
            progress.update(done, label)

    return on_batch


def replay(
    window: Window, acc_project_ids: Collection[str] | None = None, progress: Progress | None = None
) -> tuple[dict[str, Any], str]:
    """Retry the photos the window's report lists as failed (of the projects named, else all):
    (the result, where it was written).

    :param progress: told before each batch (its total is set to the photos to replay)
    :raises ConfigError: no report for the window, or what to fix in the configuration
    """
    from acc_buildpass.pipeline import replay as replay_step

    config = load_config()
    only = {m.acc_project_id for m in select_projects(config, acc_project_ids).projects} if acc_project_ids else None

    with clients(config) as (acc, buildpass):
        store = build_store(config)
        result = replay_step.replay(acc, buildpass, store, config, window, _photos_done(progress), only=only)
    if progress is not None:
        progress.finish(", ".join(f"{n} {status.replace('_', ' ')}" for status, n in result["totals"].items()))
    return result, f"s3://{store.bucket}/{store.layout.replay_report(window, 'json')}"


def backfill(
    window: Window, acc_project_ids: Collection[str] | None = None, progress: Progress | None = None
) -> tuple[dict[str, Any], str]:
    """Copy every photo of ``window`` (any length) in this process, as the DAG copies a window:
    extract, then each batch staged and published in turn, then the report (of the projects
    named, else all): (the report, where it was written). The ledger is the DAG's: a photo copied
    here is not created again by a later run over the same hours, nor the other way round.

    :param progress: told after each batch (its total is set to the photos to copy)
    :raises ConfigError: what to fix in the Variable, a connection or a mapping (nothing moved)
    """
    from datetime import UTC, datetime

    from acc_buildpass.pipeline import copy, extract, report

    config = select_projects(load_config(), acc_project_ids)

    with clients(config) as (acc, buildpass):
        store = build_store(config)
        batches = extract.extract(acc, buildpass, store, config, window)
        copy.copy_batches(acc, buildpass, store, config, batches, _photos_done(progress))
    result = report.build(
        store, config, window, batches, run_id=f"acc-buildpass backfill {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
    )
    if progress is not None:
        totals = result["totals"]
        progress.finish(f"{totals['created']} created, {totals['present']} already there, {totals['failed']} failed")
    return result, f"s3://{store.bucket}/{store.layout.report(window, 'json')}"


def verify(
    window: Window, acc_project_ids: Collection[str] | None = None, progress: Progress | None = None
) -> tuple[dict[str, Any], str]:
    """Read BuildPass back and reconcile the window's eligible ACC photos (of the projects named,
    else all): (the result, where it was written).

    :param progress: told of every ACC page listed (its total is set to the number of projects)
    :raises ConfigError: what to fix in the Variable, a connection or a mapping
    """
    from acc_buildpass.pipeline import verify as verify_step

    config = select_projects(load_config(), acc_project_ids)
    position = {m.acc_project_id: i for i, m in enumerate(config.projects)}

    def on_page(mapping: Any, pages: int, records: int) -> None:
        if progress is not None:
            progress.update(position[mapping.acc_project_id], f"{mapping.acc_project_id}: {records} records listed")

    with clients(config) as (acc, buildpass):
        store = build_store(config)
        if progress is not None:
            progress.total, progress.unit = len(config.projects), "projects"
        result = verify_step.verify(acc, buildpass, store, config, window, on_page)
    if progress is not None:
        totals = result["totals"]
        progress.finish(f"{totals['confirmed']} of {totals['eligible']} eligible photo(s) confirmed in BuildPass")
    return result, f"s3://{store.bucket}/{store.layout.verify_report(window)}"


# -- the command line's process -------------------------------------------------------------------


def use_metadata_db() -> None:
    """Read Variables and connections the way Airflow's own CLI does: env vars, secrets backends,
    then the metadata DB. When the DB cannot be read, leave it out (no traceback per lookup;
    ``check`` names the DB's error once, through the pool lookup)."""
    try:
        pool_exists(DEFAULT_POOL)
    except Exception:
        return
    os.environ.setdefault("_AIRFLOW_PROCESS_CONTEXT", "server")


def set_up_logging(verbose: bool) -> None:
    """The CLI's logging: warnings and errors only (its own lines are the output), INFO with --verbose."""
    os.environ["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "INFO" if verbose else "WARNING"  # this process only
    import airflow.sdk  # noqa: F401  (configures Airflow's logging; ours comes after)

    level = logging.INFO if verbose else logging.WARNING
    logging.getLogger().setLevel(level)
    for name in ("acc_buildpass", "airflow", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(level)
