"""Check: every part of the setup, one finding each, before anything moves.

``acc-buildpass check`` and the operations DAG's check action run these. Nothing is read but
sign-ins, the bucket and the mappings; one probe object is written to the bucket and deleted.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.config import PipelineConfig
from acc_buildpass.errors import ApiError, AuthError, ConfigError, RefreshTokenRejected, StorageError, one_line
from acc_buildpass.models import CheckStatus, ProjectMapping
from acc_buildpass.pipeline.extract import acc_mapping_problem
from acc_buildpass.pipeline.folders import buildpass_mapping_problem
from acc_buildpass.storage import Store

OK, PROBLEM, SKIP = CheckStatus.OK, CheckStatus.PROBLEM, CheckStatus.SKIP  # the names runtime.py uses


POOL_HINT = '"BuildPass: 100 requests / 10 s per IP"'


@dataclass(frozen=True)
class Finding:
    """One line of ``check``: what was looked at and, for a problem, what to fix."""

    status: CheckStatus
    subject: str
    message: str

    @property
    def problem(self) -> bool:
        return self.status == PROBLEM

    def line(self) -> str:
        return f"{self.status} {self.subject}: {self.message}"


def problem(subject: str, message: str) -> Finding:
    return Finding(PROBLEM, subject, message)


def check_acc_sign_in(acc: AccClient, conn_id: str) -> list[Finding]:
    """The client id/secret (a two-legged token), then the user's sign-in: a stored access
    token that is still valid is reused, else the refresh token is spent once and its successor
    stored before use, exactly as the DAG's tasks do."""
    subject = f"ACC connection {conn_id}"
    try:
        acc.check_client()
    except AuthError as exc:
        return [
            problem(
                subject,
                f"ACC refused the client id or secret ({exc.status}): set login to the APS app's client id "
                "and password to its client secret",
            )
        ]
    except (ApiError, ValueError) as exc:
        return [problem(subject, f"the ACC token endpoint did not answer ({one_line(exc)}): check host")]
    try:
        acc.access_token()
    except RefreshTokenRejected as exc:
        return [problem(subject, exc.message)]
    except (AuthError, ConfigError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        return [problem(subject, message)]
    except ApiError as exc:
        return [problem(subject, f"the user sign-in failed ({one_line(exc)}): check host and extra.refresh_token")]
    how = (
        "a stored access token is still valid; no refresh token spent"
        if acc.refreshes == 0
        else "refresh token used once; its successor is stored for the DAG"
    )
    return [Finding(OK, subject, f"client id and secret accepted; signed in as the user ({how})")]


def check_buildpass_sign_in(buildpass: BuildPassClient, conn_id: str) -> list[Finding]:
    subject = f"BuildPass connection {conn_id}"
    try:
        buildpass.sign_in()
    except AuthError as exc:
        return [
            problem(
                subject,
                f"BuildPass refused the client credentials ({exc.status}): set login/password to the OAuth "
                "client id and secret",
            )
        ]
    except ApiError as exc:
        return [problem(subject, f"BuildPass sign-in failed ({one_line(exc)}): check host and the client's scopes")]
    return [Finding(OK, subject, "client-credentials token issued (read:photos write:photos)")]


def check_staging(store: Store, conn_id: str) -> list[Finding]:
    """The bucket exists and takes a write and a delete under the prefix."""
    subject = f"staging s3://{store.bucket}/{store.layout.prefix}/"
    key = store.layout.probe(secrets.token_hex(8))
    try:
        store.probe(key)
    except ConfigError as exc:
        return [problem(subject, str(exc))]
    except StorageError as exc:
        return [problem(subject, _staging_problem(exc, key, conn_id))]
    return [Finding(OK, subject, "bucket exists; a probe object was written and deleted")]


def _staging_problem(exc: StorageError, key: str, conn_id: str) -> str:
    """What to fix when the probe failed: where S3 is, or what the credentials may do."""
    if exc.operation == "HeadBucket":
        return f"S3 not reachable ({one_line(exc)}): fix extra.endpoint_url of connection {conn_id}"
    if exc.unreachable:
        return f"S3 write failed ({one_line(exc)}): fix connection {conn_id}"
    return (
        f"cannot write and delete {key} ({exc.code or one_line(exc)}): give the credentials of connection "
        f"{conn_id} s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket on the bucket"
    )


def check_mappings(acc: AccClient | None, buildpass: BuildPassClient | None, config: PipelineConfig) -> list[Finding]:
    """Every mapped ACC project is visible and every BuildPass builder/project/folder exists.

    A side whose client is None (its sign-in failed) is skipped with one line.
    """
    findings: list[Finding] = []
    if acc is None:
        findings.append(Finding(SKIP, "ACC projects", "not checked: the ACC sign-in failed"))
    if buildpass is None:
        findings.append(Finding(SKIP, "BuildPass projects", "not checked: the BuildPass sign-in failed"))
    for i, mapping in enumerate(config.projects):
        findings += _mapping_findings(acc, buildpass, i, mapping)
    return findings


def _mapping_findings(
    acc: AccClient | None, buildpass: BuildPassClient | None, i: int, mapping: ProjectMapping
) -> list[Finding]:
    """Mapping ``i`` looked up on each side whose client is given."""
    findings: list[Finding] = []
    if acc is not None:
        findings.append(
            _mapping_finding(
                f"projects[{i}].acc_project_id {mapping.acc_project_id}",
                lambda: acc_mapping_problem(acc, i, mapping),
                lambda exc: f"projects[{i}].acc_project_id {mapping.acc_project_id!r}: ACC refused it ({exc})",
                "ACC project visible to the user",
            )
        )
    if buildpass is not None:
        folder = f", folder {mapping.buildpass_folder_id}" if mapping.buildpass_folder_id else ""
        findings.append(
            _mapping_finding(
                f"projects[{i}] {mapping.builder_id}/{mapping.buildpass_project_id}",
                lambda: buildpass_mapping_problem(buildpass, i, mapping),
                lambda exc: f"projects[{i}].buildpass_project_id {mapping.buildpass_project_id!r}: {exc}",
                f"BuildPass builder and project{folder} exist",
            )
        )
    return findings


def _mapping_finding(
    subject: str, find: Callable[[], str | None], refused: Callable[[str], str], found_fine: str
) -> Finding:
    """:param find: what to fix, or None; may raise ApiError, which ``refused`` words from its one line"""
    try:
        found = find()
    except ApiError as exc:
        found = refused(one_line(exc))
    return problem(subject, found) if found else Finding(OK, subject, found_fine)


def check_pool(pool: str, lookup: Callable[[str], bool]) -> Finding:
    """:param lookup: True when the pool exists; raises when the metadata DB cannot be read"""
    try:
        exists = lookup(pool)
    except Exception as exc:
        return problem(
            "Airflow metadata DB",
            f"not reachable ({one_line(exc, 200)}): run where `airflow pools list` works (same AIRFLOW_HOME / "
            f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN as the scheduler); pool {pool!r} not checked",
        )
    if not exists:
        return problem(f"Airflow pool {pool}", f"does not exist: airflow pools set {pool} 4 {POOL_HINT}")
    return Finding(OK, f"Airflow pool {pool}", "exists")
