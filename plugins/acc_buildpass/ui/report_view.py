"""The reconciliation report of one DAG run, as an HTML page served by Airflow's api-server.

``GET /acc-buildpass/report/{dag_id}/{run_id}`` needs a signed-in user who may read the DAG's
runs (Airflow's own rule and auth manager: the JWT of the UI's session cookie, or a bearer
token). The page reads ``report.json`` where the run's report task wrote it: the bucket and
prefix of the Variable ``acc_buildpass_config``, the window of the run's conf or data interval.
Runs of ``acc_buildpass_operations`` show what their action wrote for the window of their conf:
a plan (``plan.json``) or a replay (``report-replay.json``). Every value is escaped (photo titles
and API messages are not ours to trust) and the page loads nothing: no script, no style sheet,
no image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from acc_buildpass import runtime
from acc_buildpass.config import resolve_window
from acc_buildpass.errors import ConfigError
from acc_buildpass.models import Window
from acc_buildpass.settings import COPY_DAG_ID, DEFAULT_ACTION, OPERATIONS_DAG_ID, VARIABLE
from acc_buildpass.storage import Layout, describe_failure

DAG_ID = COPY_DAG_ID  # the tab shows on every DAG's runs: only this one's have a report
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}
COLUMNS = (
    ("found", "found"),
    ("skipped", "skipped"),
    ("eligible", "eligible"),
    ("downloaded", "downloaded"),
    ("created", "created"),
    ("present", "already present"),
    ("failed", "failed"),
)
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 16px; color: #1a202c; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
.meta { color: #4a5568; margin: 0 0 12px; } code { font-size: 13px; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { border: 1px solid #cbd5e0; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #edf2f7; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
tfoot td { font-weight: 600; background: #f7fafc; }
.ok { color: #22543d; font-weight: 600; } .bad { color: #9b2c2c; font-weight: 600; }
.warn { color: #975a16; font-weight: 600; }
"""

app = FastAPI(title="ACC to BuildPass reports", docs_url=None, redoc_url=None, openapi_url=None)


@dataclass
class Located:
    """Where a run's report is, and the report when it was found."""

    where: str
    report: dict[str, Any] | None = None
    problem: str | None = None


@app.get(
    "/report/{dag_id}/{run_id:path}",
    response_class=HTMLResponse,
    dependencies=[Depends(requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN))],
)
def report_page(dag_id: str, run_id: str, session: SessionDep) -> HTMLResponse:
    from airflow.models.dagrun import DagRun

    run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if run is None:
        return _html(page("Run not found", _p("bad", f"No run {run_id} of {dag_id}.", "problem")), status=404)
    if dag_id == OPERATIONS_DAG_ID:
        located = locate_operation(run.conf)
        if located.report is None and run.state in ("queued", "running"):
            located.problem = "The run is not finished: its task writes what it found when it ends."
    elif dag_id != DAG_ID:
        located = Located(
            "", problem=f"This tab shows the reports of {DAG_ID} and {OPERATIONS_DAG_ID} runs; {dag_id} has none."
        )
    else:
        located = locate(run.conf, run.data_interval_start, run.data_interval_end)
        if located.report is None and run.state in ("queued", "running"):
            located.problem = "The run is not finished: its report task writes the report when it ends."
    return _html(render(dag_id, run_id, str(run.state), located))


def locate(conf: Any, interval_start: Any, interval_end: Any) -> Located:
    """Read the report of the window the run copied (the same window its tasks resolved)."""
    return _read(conf, interval_start, interval_end, lambda layout, window: layout.report(window, "json"))


def locate_operation(conf: Any) -> Located:
    """Read what a run of the operations DAG wrote: its plan, or its replay's result."""
    conf = conf if isinstance(conf, dict) else {}
    action = conf.get("action") or DEFAULT_ACTION
    if action == "plan":
        return _read(conf, None, None, lambda layout, window: layout.plan_report(window))
    if action == "replay":
        return _read(conf, None, None, lambda layout, window: layout.replay_report(window, "json"))
    return Located("", problem=f"A {action} writes no report: its findings are in the log of the task operate.")


def _read(conf: Any, interval_start: Any, interval_end: Any, key_of: Callable[[Layout, Window], str]) -> Located:
    try:
        config = runtime.load_config_in_api_server()
    except runtime.VariableNotSet:
        return Located("", problem=f"The Variable {VARIABLE} is not set, so there is no staging bucket to read.")
    except ConfigError as exc:
        return Located("", problem=f"This run has no report: {exc}")
    try:
        window = resolve_window(conf if isinstance(conf, dict) else {}, interval_start, interval_end)
    except (ConfigError, ValueError) as exc:
        return Located("", problem=f"This run has no report: {exc}")
    key = key_of(Layout(config.staging_bucket, config.staging_prefix), window)
    where = f"s3://{config.staging_bucket}/{key}"
    try:
        report = runtime.build_store(config, "ui").get_json(key)
    except ConfigError as exc:  # the staging connection is missing: the message says what to set
        return Located(where, problem=f"The report could not be read: {exc}.")
    except Exception as exc:  # S3 down, credentials refused: say so, but not the exception's text
        return Located(where, problem=f"The report could not be read ({describe_failure(exc)}).")
    if report is None:
        return Located(where, problem="No report has been written for this run's window yet.")
    return Located(where, report=report)


# -- rendering: plain functions of the report; _p and _table escape every value they are given --


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def _p(css: str, text: str, id_: str = "") -> str:
    ident = f' id="{id_}"' if id_ else ""
    return f'<p class="{css}"{ident}>{_e(text)}</p>'


def _table(id_: str, headers: list[str], rows: list[list[Any]], total: list[Any] | None = None) -> str:
    """Numbers right-aligned; the total row, when given, in a ``<tfoot>``."""

    def tr(row: list[Any]) -> str:
        cells = (f'<td class="n">{v}</td>' if isinstance(v, int) else f"<td>{_e(v)}</td>" for v in row)
        return "<tr>" + "".join(cells) + "</tr>"

    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers) + "</tr>"
    foot = f"<tfoot>{tr(total)}</tfoot>" if total else ""
    return f'<table id="{id_}"><thead>{head}</thead><tbody>{"".join(map(tr, rows))}</tbody>{foot}</table>'


def _count(value: Any) -> int:
    """A count as the report holds it: a number, skipped reasons with counts, or failed photos."""
    if isinstance(value, dict):
        return sum(int(v) for v in value.values())
    if isinstance(value, list):
        return len(value)
    return int(value or 0)


def render(dag_id: str, run_id: str, state: str, located: Located) -> str:
    title = "ACC → BuildPass copy report"
    run = f"Run {run_id} of {dag_id}: {state}." + (f" Report: {located.where}" if located.where else "")
    body = [f"<h1>{_e(title)}</h1>", _p("meta", run)]
    report = located.report
    if report is None:
        return page(title, "".join([*body, _p("bad", located.problem or "", "problem")]))
    if report.get("dry_run"):  # a plan of the operations DAG
        return page("ACC → BuildPass plan", "".join(body) + render_plan(report, run_id))
    if "replayed_at" in report:  # a replay of the operations DAG
        return page("ACC → BuildPass replay", "".join(body) + render_replay(report))

    window, totals, projects = report.get("window", {}), report.get("totals", {}), report.get("projects", [])
    body.append(
        _p(
            "meta",
            f"Photos created in [{window.get('start')}, {window.get('end')}), {report.get('publish_mode')} mode, "
            f"{report.get('batches')} batch(es).",
        )
    )
    if report.get("run_id") not in (None, run_id):
        note = f"The window was reconciled again since, by run {report['run_id']}: this is the latest report."
        body.append(_p("warn", note, "superseded"))
    failed = [
        [p.get("acc_project_id"), f.get("photo_id"), f.get("reason")] for p in projects for f in p.get("failed", [])
    ]
    if failed:
        body.append(_p("bad", f"{len(failed)} photo(s) could not be copied:", "verdict"))
        body.append(_table("failed", ["ACC project", "photo", "reason"], failed))
    else:
        body.append(_p("ok", f"Every eligible photo is in BuildPass ({_count(totals.get('eligible'))}).", "verdict"))
    body.append("<h2>Photos per project</h2>")
    body.append(
        _table(
            "projects",
            ["ACC project", "BuildPass project"] + [label for _, label in COLUMNS],
            [
                [p.get("acc_project_id"), p.get("buildpass_project_id")] + [_count(p.get(key)) for key, _ in COLUMNS]
                for p in projects
            ],
            total=["Total", ""] + [_count(totals.get(key)) for key, _ in COLUMNS],
        )
    )
    skipped = [[p.get("acc_project_id"), *row] for p in projects for row in sorted((p.get("skipped") or {}).items())]
    if skipped:
        body.append("<h2>Skipped, and why</h2>")
        body.append(_table("skipped", ["ACC project", "reason", "photos"], skipped))
    return page(title, "".join(body))


PLAN_COLUMNS = (
    ("found", "found"),
    ("to_copy", "to copy"),
    ("to_copy_bytes", "bytes to copy"),
    ("already_in_buildpass", "already in BuildPass"),
    ("skipped", "skipped"),
    ("will_fail", "will fail"),
)


def _plan_cell(counts: dict[str, Any], key: str) -> int | str:
    from acc_buildpass.cli.render import human_bytes

    return human_bytes(_count(counts.get(key))) if key == "to_copy_bytes" else _count(counts.get(key))


def render_plan(plan: dict[str, Any], run_id: str) -> str:
    """A dry run (``operations.plan_json`` plus the run id), as the command's table shows it."""
    window, projects, totals = plan.get("window", {}), plan.get("projects", []), plan.get("totals", {})
    body = [
        "<h2>Plan: a dry run of the window</h2>",
        _p(
            "meta",
            f"Dry run for photos created in [{window.get('start')}, {window.get('end')}): "
            "nothing was staged, created or written.",
        ),
    ]
    if plan.get("run_id") not in (None, run_id):
        body.append(
            _p(
                "warn",
                f"The window was planned again since, by run {plan['run_id']}: this is the latest plan.",
                "superseded",
            )
        )
    body.append(
        _p(
            "ok",
            f"{_count(totals.get('to_copy'))} photo(s) to copy, "
            f"{_count(totals.get('already_in_buildpass'))} already in BuildPass.",
            "verdict",
        )
    )
    body.append(
        _table(
            "plan",
            ["ACC project", "BuildPass"] + [label for _, label in PLAN_COLUMNS],
            [
                [p.get("acc_project_id"), f"{p.get('builder_id')}/{p.get('buildpass_project_id')}"]
                + [_plan_cell(p, key) for key, _ in PLAN_COLUMNS]
                for p in projects
            ],
            total=["Total", ""] + [_plan_cell(totals, key) for key, _ in PLAN_COLUMNS],
        )
    )
    reasons = [
        [p.get("acc_project_id"), verb, reason, _count(n)]
        for p in projects
        for kind, verb in (("skipped_reasons", "skipped"), ("will_fail_reasons", "will fail"))
        for reason, n in sorted((p.get(kind) or {}).items())
    ]
    if reasons:
        body.append("<h2>Not copied, and why</h2>")
        body.append(_table("reasons", ["ACC project", "", "reason", "photos"], reasons))
    return "".join(body)


def render_replay(result: dict[str, Any]) -> str:
    """A replay's result (``report-replay.json``): what came of each photo the report listed as failed."""
    window, totals, photos = result.get("window", {}), result.get("totals", {}), result.get("photos", [])
    body = [
        "<h2>Replay of the window's failed photos</h2>",
        _p(
            "meta",
            f"Replay of the failed photos of [{window.get('start')}, {window.get('end')}) "
            f"at {result.get('replayed_at')}.",
        ),
    ]
    still = _count(totals.get("failed")) + _count(totals.get("not_replayable"))
    verdict = f"{still} photo(s) or entries still not copied." if still else "Nothing is left failing."
    body.append(_p("bad" if still else "ok", verdict, "verdict"))
    body.append(_p("meta", ", ".join(f"{_count(n)} {str(status).replace('_', ' ')}" for status, n in totals.items())))
    if photos:
        body.append(
            _table(
                "photos",
                ["ACC project", "photo", "now", "reason"],
                [[p.get("acc_project_id"), p.get("photo_id"), p.get("status"), p.get("reason")] for p in photos],
            )
        )
    return "".join(body)
