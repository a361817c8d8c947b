"""The operator's commands over the configuration Airflow holds: ``acc-buildpass`` and the DAG
``acc_buildpass_operations`` both run these, so a check, a plan or a replay is the same whether
it is typed or triggered from the UI.

Each reads the Variable ``acc_buildpass_config`` and the connections through Airflow, builds the
clients with the package's hooks and calls :mod:`acc_buildpass.operations`. Nothing here prints:
the caller decides where the table and the progress go (the terminal, or the task log).
Imports are lazy so that ``acc-buildpass --help`` starts fast.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from acc_buildpass.settings import DEFAULT_POOL

if TYPE_CHECKING:
    from acc_buildpass.cli.progress import Progress
    from acc_buildpass.config import PipelineConfig
    from acc_buildpass.models import Window
    from acc_buildpass.pipeline.checks import Finding
    from acc_buildpass.pipeline.dry_run import ProjectPlan


# -- configuration and clients ------------------------------------------------------------------


def _not_defined(exc: BaseException) -> bool:
    return type(exc).__name__ == "AirflowNotFoundException" or "isn't defined" in str(exc)


def _connection_error(conn_id: str) -> str:
    return (
        f"connection {conn_id!r} is not defined: set AIRFLOW_CONN_{conn_id.upper()} or add it "
        "(airflow connections add, the UI, or a secrets backend; see README, 'Configuration')"
    )


def require_connection(conn_id: str) -> Any:
    """:raises ConfigError: the connection is not defined anywhere Airflow looks"""
    from airflow.sdk import BaseHook

    from acc_buildpass.errors import ConfigError

    try:
        return BaseHook.get_connection(conn_id)
    except Exception as exc:
        if _not_defined(exc):
            raise ConfigError(_connection_error(conn_id)) from None
        raise


def load_config() -> PipelineConfig:
    """The Variable, parsed and validated (:raises ConfigError: what to fix)."""
    from acc_buildpass.dag_tasks import load_config as load

    return load()


def _retry(config: PipelineConfig | None, quick: bool) -> Any:
    from acc_buildpass.clients.retry import RetryPolicy

    if quick:  # check answers in seconds; the DAG's policy may wait minutes for a dead host
        return RetryPolicy(attempts=3, initial_wait=0.5, max_wait=4, max_retry_after=10)
    return config.retry if config is not None else RetryPolicy()


def build_acc(config: PipelineConfig | None, conn_id: str, *, quick: bool = False) -> Any:
    from acc_buildpass.errors import ConfigError
    from acc_buildpass.hooks.acc import AccHook

    require_connection(conn_id)
    try:
        return AccHook(conn_id, policy=_retry(config, quick)).get_conn()
    except ValueError as exc:
        raise ConfigError(f"connection {conn_id!r}: {exc}") from None


def build_buildpass(config: PipelineConfig | None, conn_id: str, *, quick: bool = False) -> Any:
    from acc_buildpass.errors import ConfigError
    from acc_buildpass.hooks.buildpass import BuildPassHook

    require_connection(conn_id)
    try:
        return BuildPassHook(conn_id, policy=_retry(config, quick)).get_conn()
    except ValueError as exc:
        raise ConfigError(f"connection {conn_id!r}: {exc}") from None


def build_store(config: PipelineConfig, *, quick: bool = False) -> Any:
    """The staging store through the S3Hook, as the DAG's tasks build it (fewer retries for check)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.config import Config

    from acc_buildpass.storage import Layout, Store

    require_connection(config.staging_conn_id)  # else boto3 falls back to ambient AWS credentials
    attempts, connect = (3, 5) if quick else (10, 10)
    retries = Config(retries={"max_attempts": attempts, "mode": "standard"}, connect_timeout=connect, read_timeout=120)
    s3 = S3Hook(aws_conn_id=config.staging_conn_id, config=retries).get_conn()
    return Store(s3, Layout(config.staging_bucket, config.staging_prefix))


def pool_exists(name: str) -> bool:
    """:raises Exception: the metadata DB cannot be read (not reachable, not migrated, or a task
    process of Airflow 3, which has no database access)"""
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        return session.scalar(select(Pool.pool).where(Pool.pool == name)) is not None


def select_projects(config: PipelineConfig, acc_project_ids: Collection[str] | None) -> PipelineConfig:
    """The configuration narrowed to some of its mappings (all of them when none are named).

    :raises ConfigError: an id that the Variable does not map
    """
    from acc_buildpass.errors import ConfigError

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
    from acc_buildpass.errors import ConfigError
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

    def client(build: Callable[[], Any], subject: str, sign_in: Callable[[Any], list[Finding]]) -> Any:
        try:
            made = build()
        except ConfigError as exc:
            findings.append(checks.problem(subject, str(exc)))
            return None
        results = sign_in(made)
        findings.extend(results)
        return None if any(f.problem for f in results) else made

    acc = client(
        lambda: build_acc(config, acc_conn, quick=True),
        f"ACC connection {acc_conn}",
        lambda c: checks.check_acc_sign_in(c, acc_conn),
    )
    buildpass = client(
        lambda: build_buildpass(config, bp_conn, quick=True),
        f"BuildPass connection {bp_conn}",
        lambda c: checks.check_buildpass_sign_in(c, bp_conn),
    )
    if config is not None:
        try:
            store = build_store(config, quick=True)
        except ConfigError as exc:
            findings.append(checks.problem(f"staging connection {config.staging_conn_id}", str(exc)))
        else:
            findings.extend(checks.check_staging(store, config.staging_conn_id))
        findings.extend(checks.check_mappings(acc, buildpass, config))
    else:
        findings.append(
            checks.Finding(checks.SKIP, "staging bucket and project mappings", "not checked: no valid Variable")
        )
    if pool_lookup is None:
        where = "not checked: a task cannot read the metadata DB; see `airflow pools list` or run `acc-buildpass check`"
        findings.append(checks.Finding(checks.SKIP, f"Airflow pool {pool}", where))
    else:
        findings.append(checks.check_pool(pool, pool_lookup))  # when the DB is down, this names its error once
    return findings


def plan(
    window: Window, acc_project_ids: Collection[str] | None = None, progress: Progress | None = None
) -> tuple[Any, list[ProjectPlan]]:
    """A dry run of the window for every mapping, or the ones named: (the store, the plans).

    :param progress: told of every page listed (its total is set to the number of projects)
    :raises ConfigError: what to fix in the Variable, a connection or a mapping
    """
    from acc_buildpass.pipeline import dry_run

    config = select_projects(load_config(), acc_project_ids)
    acc = build_acc(config, config.acc_conn_id)
    store = build_store(config)
    position = {m.acc_project_id: i for i, m in enumerate(config.projects)}
    if progress is not None:
        progress.total, progress.unit = len(config.projects), "projects"

    def on_page(mapping: Any, pages: int, records: int) -> None:
        if progress is not None:
            text = f"{mapping.acc_project_id}: {pages} pages, {records} records listed"
            progress.update(position[mapping.acc_project_id], text)

    plans = dry_run.plan(acc, store, config, window, on_page)
    if progress is not None:
        found = sum(p.found for p in plans)
        progress.finish(f"{found} photo(s) listed in {sum(p.pages for p in plans)} page(s)")
    return store, plans


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
    acc = build_acc(config, config.acc_conn_id)
    buildpass = build_buildpass(config, config.buildpass_conn_id)
    store = build_store(config)

    def on_batch(done: int, total: int, label: str) -> None:
        if progress is not None:
            progress.total, progress.unit = total, "photos"
            progress.update(done, label)

    result = replay_step.replay(acc, buildpass, store, config, window, on_batch, only=only)
    if progress is not None:
        progress.finish(", ".join(f"{n} {status.replace('_', ' ')}" for status, n in result["totals"].items()))
    return result, f"s3://{store.bucket}/{store.layout.replay_report(window, 'json')}"


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
