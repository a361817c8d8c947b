"""What the operator's commands do (``acc-buildpass check | plan | projects | replay``), as plain functions.

They take clients, a store and the configuration, never Airflow's context, so the command
line, a test or a DAG param can call them alike. Only ``replay`` downloads photos, stages
bytes and writes to BuildPass (through the DAG's own stage and publish steps); ``check``
writes one probe object to the staging bucket and deletes it at once; the rest only read.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from acc_buildpass.clients.acc import AccClient, AccHub, AccProject
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.config import PipelineConfig, ProjectMapping
from acc_buildpass.errors import AccBuildPassError, ApiError, AuthError, ConfigError, RefreshTokenRejected
from acc_buildpass.pipeline.batches import Batch, Outcome
from acc_buildpass.pipeline.extract import (
    acc_mapping_problem,
    buildpass_mapping_problem,
    classify,
    resolve_folder,
    triage,
)
from acc_buildpass.pipeline.publish import publish_batch
from acc_buildpass.pipeline.stage import stage_batch
from acc_buildpass.records import AccPhoto, Window, format_time, valid_id
from acc_buildpass.storage import Store

OK, PROBLEM, SKIP = "OK", "PROBLEM", "SKIP"
POOL_HINT = '"BuildPass: 100 requests / 10 s per IP"'
BUILDER_PLACEHOLDER = "<BuildPass builder id>"
PROJECT_PLACEHOLDER = "<BuildPass project id>"
BUCKET_PLACEHOLDER = "<staging bucket>"


# -- check --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One line of ``check``: what was looked at and, for a problem, what to fix."""

    status: str  # OK, PROBLEM or SKIP
    subject: str
    message: str

    @property
    def problem(self) -> bool:
        return self.status == PROBLEM

    def line(self) -> str:
        return f"{self.status} {self.subject}: {self.message}"


def problem(subject: str, message: str) -> Finding:
    return Finding(PROBLEM, subject, message)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        return [problem(subject, f"the ACC token endpoint did not answer ({_short(exc)}): check host")]
    try:
        acc.access_token()
    except RefreshTokenRejected as exc:
        return [problem(subject, exc.message)]
    except (AuthError, ConfigError) as exc:
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        return [problem(subject, message)]
    except ApiError as exc:
        return [problem(subject, f"the user sign-in failed ({_short(exc)}): check host and extra.refresh_token")]
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
        return [problem(subject, f"BuildPass sign-in failed ({_short(exc)}): check host and the client's scopes")]
    return [Finding(OK, subject, "client-credentials token issued (read:photos write:photos)")]


def check_staging(store: Store, conn_id: str) -> list[Finding]:
    """The bucket exists and takes a write and a delete under the prefix."""
    subject = f"staging s3://{store.bucket}/{store.layout.prefix}/"
    try:
        store.check_bucket()
    except ConfigError as exc:
        return [problem(subject, str(exc))]
    except BotoCoreError as exc:
        return [problem(subject, f"S3 not reachable ({_short(exc)}): fix extra.endpoint_url of connection {conn_id}")]
    key = store.layout.probe(secrets.token_hex(8))
    try:
        store.s3.put_object(Bucket=store.bucket, Key=key, Body=b"acc-buildpass check\n")
        store.s3.delete_object(Bucket=store.bucket, Key=key)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "") or _short(exc)
        return [
            problem(
                subject,
                f"cannot write and delete {key} ({code}): give the credentials of connection {conn_id} "
                "s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket on the bucket",
            )
        ]
    except BotoCoreError as exc:
        return [problem(subject, f"S3 write failed ({_short(exc)}): fix connection {conn_id}")]
    return [Finding(OK, subject, "bucket exists; a probe object was written and deleted")]


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
        if acc is not None:
            subject = f"projects[{i}].acc_project_id {mapping.acc_project_id}"
            try:
                found = acc_mapping_problem(acc, i, mapping)
            except ApiError as exc:
                found = f"projects[{i}].acc_project_id {mapping.acc_project_id!r}: ACC refused it ({_short(exc)})"
            findings.append(
                problem(subject, found) if found else Finding(OK, subject, "ACC project visible to the user")
            )
        if buildpass is not None:
            subject = f"projects[{i}] {mapping.builder_id}/{mapping.buildpass_project_id}"
            try:
                found = buildpass_mapping_problem(buildpass, i, mapping)
            except ApiError as exc:
                found = f"projects[{i}].buildpass_project_id {mapping.buildpass_project_id!r}: {_short(exc)}"
            folder = f", folder {mapping.buildpass_folder_id}" if mapping.buildpass_folder_id else ""
            ok = Finding(OK, subject, f"BuildPass builder and project{folder} exist")
            findings.append(problem(subject, found) if found else ok)
    return findings


def check_pool(pool: str, lookup: Callable[[str], bool]) -> Finding:
    """:param lookup: True when the pool exists; raises when the metadata DB cannot be read"""
    try:
        exists = lookup(pool)
    except Exception as exc:
        return problem(
            "Airflow metadata DB",
            f"not reachable ({_short(exc, 200)}): run where `airflow pools list` works (same AIRFLOW_HOME / "
            f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN as the scheduler); pool {pool!r} not checked",
        )
    if not exists:
        return problem(f"Airflow pool {pool}", f"does not exist: airflow pools set {pool} 4 {POOL_HINT}")
    return Finding(OK, f"Airflow pool {pool}", "exists")


# -- plan ---------------------------------------------------------------------------------------


@dataclass
class ProjectPlan:
    """What a run of the window would do for one mapping (counts from ACC and the ledger)."""

    mapping: ProjectMapping
    found: int = 0
    eligible: int = 0
    to_copy: int = 0
    to_copy_bytes: int = 0
    unknown_size: int = 0  # photos to copy whose ACC record gives no size
    already: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    will_fail: Counter[str] = field(default_factory=Counter)
    pages: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "acc_project_id": self.mapping.acc_project_id,
            "builder_id": self.mapping.builder_id,
            "buildpass_project_id": self.mapping.buildpass_project_id,
            "found": self.found,
            "eligible": self.eligible,
            "to_copy": self.to_copy,
            "to_copy_bytes": self.to_copy_bytes,
            "to_copy_unknown_size": self.unknown_size,
            "already_in_buildpass": self.already,
            "skipped": sum(self.skipped.values()),
            "skipped_reasons": dict(sorted(self.skipped.items())),
            "will_fail": sum(self.will_fail.values()),
            "will_fail_reasons": dict(sorted(self.will_fail.items())),
        }


Progress = Callable[[ProjectMapping, int, int], None]  # (mapping, pages so far, records so far)


def plan_project(
    acc: AccClient,
    store: Store,
    config: PipelineConfig,
    mapping: ProjectMapping,
    window: Window,
    progress: Progress | None = None,
) -> ProjectPlan:
    """List the window the way extraction does and look each eligible photo up in the ledger.

    Reads only: ACC's listing (no signed URLs, no downloads) and the ledger's keys.
    """
    result = ProjectPlan(mapping)
    records = 0

    def on_page(count: int) -> None:
        nonlocal records
        result.pages += 1
        records += count
        if progress is not None:
            progress(mapping, result.pages, records)

    in_ledger = store.ledger_ids(mapping.builder_id, mapping.buildpass_project_id)
    listing = acc.iter_photos(mapping.acc_project_id, window.start, window.end, on_page=on_page)
    for photo, _, verdict in triage(listing, config.media_types):
        result.found += 1
        if verdict or photo is None:
            status, reason = verdict or ("failed", "unreadable ACC record")
            (result.skipped if status == "skipped" else result.will_fail)[reason] += 1
            continue
        result.eligible += 1
        if photo.id in in_ledger and store.published(mapping.builder_id, mapping.buildpass_project_id, photo.id):
            result.already += 1
            continue
        result.to_copy += 1
        if photo.size is None:
            result.unknown_size += 1
        else:
            result.to_copy_bytes += photo.size
    return result


def plan(
    acc: AccClient, store: Store, config: PipelineConfig, window: Window, progress: Progress | None = None
) -> list[ProjectPlan]:
    """A dry run of one window for every mapping: nothing staged, created or written.

    :raises ConfigError: the bucket is not usable, or a mapped ACC project is not visible
    """
    store.check_bucket()
    plans = []
    for i, mapping in enumerate(config.projects):
        missing = acc_mapping_problem(acc, i, mapping)
        if missing:
            raise ConfigError(missing)
        plans.append(plan_project(acc, store, config, mapping, window, progress))
    return plans


_TOTAL_KEYS = ("found", "eligible", "to_copy", "to_copy_bytes", "to_copy_unknown_size", "already_in_buildpass")


def plan_json(window: Window, plans: list[ProjectPlan]) -> dict[str, Any]:
    projects = [p.as_dict() for p in plans]
    totals = {k: sum(p[k] for p in projects) for k in (*_TOTAL_KEYS, "skipped", "will_fail")}
    return {
        "window": {"start": format_time(window.start), "end": format_time(window.end), "id": window.id},
        "dry_run": True,
        "projects": projects,
        "totals": totals,
    }


def human_bytes(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"  # not reached


def render_table(header: list[str], rows: list[list[str]], right: Iterable[int] = ()) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    align = set(right)

    def fmt(row: list[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [str(c).rjust(w) if i in align else str(c).ljust(w) for i, (c, w) in pairs]
        return "  ".join(cells).rstrip()

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def render_plan(window: Window, plans: list[ProjectPlan]) -> str:
    data = plan_json(window, plans)
    header = ["ACC project", "BuildPass", "found", "to copy", "bytes", "already in BuildPass", "skipped", "will fail"]

    def row(label: str, target: str, p: dict[str, Any]) -> list[str]:
        unknown = p["to_copy_unknown_size"]
        size = human_bytes(p["to_copy_bytes"]) + (f" (+{unknown} of unknown size)" if unknown else "")
        return [
            label,
            target,
            str(p["found"]),
            str(p["to_copy"]),
            size,
            str(p["already_in_buildpass"]),
            str(p["skipped"]),
            str(p["will_fail"]),
        ]

    rows = [row(p["acc_project_id"], f"{p['builder_id']}/{p['buildpass_project_id']}", p) for p in data["projects"]]
    if len(rows) > 1:
        rows.append(row("total", "", data["totals"]))
    lines = [
        f"Dry run for photos created in [{data['window']['start']}, {data['window']['end']}): "
        "nothing is staged, created or written.",
        "",
        render_table(header, rows, right=range(2, 8)),
    ]
    reasons = []
    for p in data["projects"]:
        for kind in ("skipped_reasons", "will_fail_reasons"):
            for reason, count in p[kind].items():
                verb = "skipped" if kind == "skipped_reasons" else "will fail"
                reasons.append(f"  {p['acc_project_id']}: {count} {verb}: {reason}")
    if reasons:
        lines += ["", "Not copied, and why:", *reasons]
    return "\n".join(lines)


# -- projects -----------------------------------------------------------------------------------


def discover(acc: AccClient) -> list[tuple[AccHub, list[AccProject]]]:
    """Every hub the user sees, with its projects (Data Management)."""
    return [(hub, acc.list_projects(hub.id)) for hub in acc.list_hubs()]


def known_builders(config: PipelineConfig | None, connection_extra: dict[str, Any] | None) -> dict[str, list[str]]:
    """Builder ids (with their mapped BuildPass projects) from the Variable and the connection.

    BuildPass documents no endpoint that lists a builder's projects, so this is all there is:
    the connection's optional ``extra.builder_ids`` (or ``builder_id``) and the mappings.
    """
    builders: dict[str, list[str]] = {}
    extra = connection_extra or {}
    raw = extra.get("builder_ids") or extra.get("builder_id") or []
    for builder in [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []:
        for one in str(builder).split(","):
            if one.strip():
                builders.setdefault(one.strip(), [])
    for mapping in config.projects if config else ():
        projects = builders.setdefault(mapping.builder_id, [])
        if mapping.buildpass_project_id not in projects:
            projects.append(mapping.buildpass_project_id)
    return builders


def starter_config(
    projects: list[AccProject], config: PipelineConfig | None, builders: dict[str, list[str]]
) -> dict[str, Any]:
    """A Variable to edit: every ACC project, mapped as the current Variable maps it, or to
    placeholders that ``PipelineConfig.from_variable`` refuses until they are replaced."""
    mapped = {m.acc_project_id: m for m in config.projects} if config else {}
    only_builder = next(iter(builders)) if len(builders) == 1 else BUILDER_PLACEHOLDER
    entries = []
    for project in projects:
        current = mapped.get(project.id)
        entries.append(
            {
                "acc_project_id": project.id,
                "acc_project_name": project.name,
                "builder_id": current.builder_id if current else only_builder,
                "buildpass_project_id": current.buildpass_project_id if current else PROJECT_PLACEHOLDER,
                "buildpass_folder_id": current.buildpass_folder_id if current else None,
            }
        )
    return {
        "staging_bucket": config.staging_bucket if config else BUCKET_PLACEHOLDER,
        "staging_prefix": config.staging_prefix if config else "acc-photos",
        "projects": entries,
    }


def projects_json(
    found: list[tuple[AccHub, list[AccProject]]], config: PipelineConfig | None, builders: dict[str, list[str]]
) -> dict[str, Any]:
    mapped = {m.acc_project_id: m for m in config.projects} if config else {}
    return {
        "acc": [
            {
                "hub_id": hub.id,
                "hub_name": hub.name,
                "projects": [
                    {
                        "acc_project_id": p.id,
                        "name": p.name,
                        "mapped_to": (
                            f"{mapped[p.id].builder_id}/{mapped[p.id].buildpass_project_id}" if p.id in mapped else None
                        ),
                    }
                    for p in projects
                ],
            }
            for hub, projects in found
        ],
        "buildpass": {
            "builders": [{"builder_id": b, "mapped_projects": ps} for b, ps in builders.items()],
            "note": "no documented endpoint lists a builder's projects; the builders here come from the "
            "Variable's mappings and the connection's extra.builder_ids",
        },
    }


def render_projects(
    found: list[tuple[AccHub, list[AccProject]]], config: PipelineConfig | None, builders: dict[str, list[str]]
) -> str:
    data = projects_json(found, config, builders)
    lines: list[str] = []
    if not data["acc"]:
        lines.append("ACC: the signed-in user sees no hub.")
    for hub in data["acc"]:
        lines.append(f"ACC hub {hub['hub_name'] or '(no name)'} ({hub['hub_id']}): {len(hub['projects'])} project(s)")
        rows = [[p["acc_project_id"], p["name"], p["mapped_to"] or "-"] for p in hub["projects"]]
        if rows:
            lines += ["", render_table(["ACC project id", "name", "mapped to (builder/project)"], rows), ""]
    lines.append("BuildPass: " + data["buildpass"]["note"] + ".")
    if builders:
        for builder, projects in builders.items():
            lines.append(f"  builder {builder}: projects {', '.join(projects) if projects else '(none mapped yet)'}")
    else:
        lines.append("  no builder known yet: put your builder id in the Variable's mappings")
    return "\n".join(lines)


# -- replay -------------------------------------------------------------------------------------

REPLAY_BATCH_BASE = 90000  # replay batches' outcomes sit beside the DAG's, never on its indexes
FETCH_CHUNK = 50  # ids per photos_by_id call
ReplayProgress = Callable[[int, int, str], None]  # (photos done, photos to replay, what is under way)

# What came of one photo the window's report lists as failed.
CREATED, PRESENT, STILL_FAILED, DELETED, SKIPPED, NOT_REPLAYABLE = (
    "created",  # now in BuildPass, created by this replay
    "present",  # already in BuildPass (an earlier replay or run got it there)
    "failed",  # still failed; the reason says why
    "deleted",  # deleted in ACC since: nothing to copy
    "skipped",  # no longer copied under the Variable (e.g. its mediaType is not in media_types)
    "not_replayable",  # a report entry that names no photo ("*", "batch ...") or an unmapped project
)
REPLAY_STATUSES = (CREATED, PRESENT, STILL_FAILED, DELETED, SKIPPED, NOT_REPLAYABLE)


@dataclass(frozen=True)
class ReplayEntry:
    acc_project_id: str
    photo_id: str
    status: str
    reason: str = ""
    was: str = ""  # the reason the window's report gave

    def as_dict(self) -> dict[str, str]:
        return {
            "acc_project_id": self.acc_project_id,
            "photo_id": self.photo_id,
            "status": self.status,
            "reason": self.reason,
            "reported_reason": self.was,
        }


def replayable_id(photo_id: object) -> bool:
    """A report entry that names one photo (not "*" or "batch <label>")."""
    return isinstance(photo_id, str) and valid_id(photo_id)


def _replay_outcome(project: str, stage: Outcome, published: dict[str, Outcome], was: str) -> ReplayEntry:
    photo_id = stage.photo_id
    if stage.status == "present":
        return ReplayEntry(project, photo_id, PRESENT, "already in BuildPass (ledger)", was)
    if stage.status == "skipped":  # the stage step skips a photo only when it was deleted meanwhile
        return ReplayEntry(project, photo_id, DELETED, stage.reason, was)
    if stage.status != "staged":
        return ReplayEntry(project, photo_id, STILL_FAILED, stage.reason or stage.status, was)
    final = published.get(photo_id)
    if final is None:
        return ReplayEntry(project, photo_id, STILL_FAILED, "missing from the publish outcome", was)
    if final.status == "created":
        return ReplayEntry(project, photo_id, CREATED, "", was)
    if final.status == "present":
        return ReplayEntry(project, photo_id, PRESENT, "already in BuildPass", was)
    return ReplayEntry(project, photo_id, STILL_FAILED, final.reason or final.status, was)


def _replay_batch(
    acc: AccClient, buildpass: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch, was: dict[str, str]
) -> list[ReplayEntry]:
    """Stage then publish one replay batch with the DAG's step functions, writing their outcomes
    where the DAG's tasks write them (the publish step reads the stage outcome from there)."""
    project = batch.acc_project_id
    photo_ids = [p.id for key in batch.parts for p in store.read_manifest(key)]
    try:
        staged = stage_batch(acc, store, config, batch)
        store.put_json(store.layout.batch_outcome(batch.window, batch.index, "stage"), staged)
        published = {o.photo_id: o for o in publish_batch(buildpass, store, config, batch)}
        store.put_json(store.layout.batch_outcome(batch.window, batch.index, "publish"), list(published.values()))
    except ConfigError:
        raise
    except AccBuildPassError as exc:  # the whole batch (an API that stayed down): every photo still failed
        reason = f"{batch.label} failed: {_short(exc)}"
        return [ReplayEntry(project, pid, STILL_FAILED, reason, was.get(pid, "")) for pid in photo_ids]
    return [_replay_outcome(project, o, published, was.get(o.photo_id, "")) for o in staged]


def replay(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    window: Window,
    progress: ReplayProgress | None = None,
    *,
    only: Collection[str] | None = None,
) -> dict[str, Any]:
    """Retry exactly the photos the window's report lists as failed, and report what came of each.

    The current ACC record of every failed photo is fetched by id (photos deleted since are
    reported, not copied); the rest go through the DAG's stage and publish steps in batches
    numbered from :data:`REPLAY_BATCH_BASE`, from manifest parts under the window's ``replay/``
    prefix. The ledger and ``bulk-upsert``'s idempotency keep each photo in BuildPass exactly
    once: a photo already there is reported ``present`` and neither downloaded nor sent again.
    The result is written to ``report-replay.json`` beside the window's report (which is left
    as the DAG wrote it).

    :param progress: called before each batch with (photos done, photos to replay, the batch)
    :param only: the ACC projects whose failures to replay (the others are left as they are)

    :raises ConfigError: no report for the window (run the DAG for it first), the bucket is not
        usable, or a mapped project does not exist on either side
    """
    store.check_bucket()
    source_key = store.layout.report(window, "json")
    source = store.get_json(source_key)
    if not isinstance(source, dict) or not isinstance(source.get("projects"), list):
        raise ConfigError(
            f"no report for window {window.id} at s3://{store.bucket}/{source_key}: run the DAG for the window "
            "first (airflow dags trigger acc_to_buildpass_photos with window_start/window_end), then replay "
            "what it could not copy"
        )
    mappings = {m.acc_project_id: m for m in config.projects}
    entries: list[ReplayEntry] = []
    work: list[tuple[ProjectMapping, list[AccPhoto], dict[str, str]]] = []
    for row in source["projects"]:
        project = str(row.get("acc_project_id") or "")
        failed = [f for f in row.get("failed") or [] if isinstance(f, dict)]
        if not failed or (only is not None and project not in only):
            continue
        mapping = mappings.get(project)
        was: dict[str, str] = {}
        ids: list[str] = []
        for item in failed:
            photo_id, reason = str(item.get("photo_id", "")), str(item.get("reason", ""))
            if mapping is None:
                entries.append(
                    ReplayEntry(
                        project, photo_id, NOT_REPLAYABLE, "the project is no longer mapped in the Variable", reason
                    )
                )
            elif not replayable_id(photo_id):
                entries.append(
                    ReplayEntry(
                        project,
                        photo_id,
                        NOT_REPLAYABLE,
                        "names no single photo: run the DAG for the window again",
                        reason,
                    )
                )
            elif photo_id not in was:
                was[photo_id] = reason
                ids.append(photo_id)
        if mapping is None or not ids:
            continue
        problem_found = acc_mapping_problem(acc, config.projects.index(mapping), mapping)
        if problem_found:
            raise ConfigError(problem_found)
        current: dict[str, AccPhoto] = {}
        for start in range(0, len(ids), FETCH_CHUNK):
            current.update(acc.photos_by_id(project, ids[start : start + FETCH_CHUNK]))
        todo: list[AccPhoto] = []
        for photo_id in ids:
            photo = current.get(photo_id)
            if photo is None:
                if was[photo_id].startswith("unreadable ACC record"):  # photos_by_id leaves such records out
                    reason = "ACC did not return a readable record for it"
                    entries.append(ReplayEntry(project, photo_id, STILL_FAILED, reason, was[photo_id]))
                else:
                    entries.append(ReplayEntry(project, photo_id, DELETED, "no longer in ACC", was[photo_id]))
                continue
            verdict = classify(photo, config.media_types)
            if verdict is not None:
                status, reason = verdict
                kind = DELETED if photo.deleted_at is not None else SKIPPED if status == "skipped" else STILL_FAILED
                entries.append(ReplayEntry(project, photo_id, kind, reason, was[photo_id]))
                continue
            todo.append(replace(photo, file_url=None))  # the stage step asks for fresh signed URLs
        if todo:
            work.append((mapping, todo, was))

    index = REPLAY_BATCH_BASE
    total, done = sum(len(todo) for _, todo, _ in work), 0
    for mapping, todo, was in work:
        folder = resolve_folder(buildpass, mapping, config.folder_name)
        groups = [todo[i : i + config.batch_size] for i in range(0, len(todo), config.batch_size)]
        for n, group in enumerate(groups, start=1):
            key = store.layout.replay_part(window, mapping.acc_project_id, n - 1)
            store.write_manifest(key, group)
            batch = Batch.of(
                mapping,
                window,
                index=index,
                label=f"replay {mapping.label} {n}/{len(groups)}",
                folder_id=folder,
                parts=(key,),
                count=len(group),
            )
            index += 1
            if progress is not None:
                progress(done, total, f"{batch.label}: {len(group)} photo(s)")
            entries += _replay_batch(acc, buildpass, store, config, batch, was)
            done += len(group)

    counts = Counter(e.status for e in entries)
    result = {
        "window": {"start": format_time(window.start), "end": format_time(window.end), "id": window.id},
        "replayed_at": format_time(datetime.now(UTC)),
        "source_report": {"key": source_key, "run_id": source.get("run_id")},
        "publish_mode": config.publish_mode,
        "only_projects": sorted(only) if only is not None else None,
        "photos": [e.as_dict() for e in entries],
        "totals": {status: counts.get(status, 0) for status in REPLAY_STATUSES},
    }
    store.put_json(store.layout.replay_report(window, "json"), result)
    return result


def replay_ok(result: dict[str, Any]) -> bool:
    """Nothing still failed, and every failure the report listed named a photo to retry."""
    totals = result["totals"]
    return totals[STILL_FAILED] == 0 and totals[NOT_REPLAYABLE] == 0


def render_replay(result: dict[str, Any]) -> str:
    window = result["window"]
    photos = result["photos"]
    lines = [f"Replay of the failed photos of window [{window['start']}, {window['end']}):", ""]
    if not photos:
        lines.append("The window's report lists no failed photo: nothing to replay.")
    else:
        rows = [[p["acc_project_id"], p["photo_id"], p["status"], p["reason"]] for p in photos]
        lines.append(render_table(["ACC project", "photo", "now", "reason"], rows))
    totals = result["totals"]
    lines += ["", ", ".join(f"{count} {status.replace('_', ' ')}" for status, count in totals.items())]
    if totals[STILL_FAILED]:
        lines.append(f"{totals[STILL_FAILED]} photo(s) still failed: fix the cause and replay again.")
    if totals[NOT_REPLAYABLE]:
        lines.append(
            f"{totals[NOT_REPLAYABLE]} report entr(ies) name no photo to retry: run the DAG for the window again."
        )
    return "\n".join(lines)


def describe_error(exc: BaseException) -> str:
    """One line for an error a command could not get past."""
    if isinstance(exc, AccBuildPassError):
        return str(exc)
    return f"{type(exc).__name__}: {_short(exc)}"
