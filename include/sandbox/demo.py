"""``make demo``: a whole run on this machine, then the report and the figures.

Starts SeaweedFS and both emulators, seeds two ACC projects with a few hundred photos over three
days (some deleted, some videos), runs the real DAG through ``airflow dags test`` for each day
and then once more for the whole range (nothing is created twice), reconciles BuildPass against
ACC, prints the report and requests per photo for each API, and stops what it started.
Exit code 0 only when every eligible photo is in BuildPass exactly once with the same bytes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from acc_buildpass.cli.render import render_verify
from acc_buildpass.models import Window
from acc_buildpass.pipeline.report import render

from sandbox.stack import ROOT, Stack

PROJECTS = {
    "36c0838c-0360-4cfa-b2c6-85e0056ec7e8": {"count": 240, "deleted": 7, "videos": 5},
    "9f2d4c1e-7a35-4b8e-9c61-2f0e5d8a4b17": {"count": 120, "deleted": 3, "videos": 2},
}
START = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", default=str(ROOT / ".demo"), help="where the servers and Airflow keep their state")
    args = parser.parse_args(argv)

    print("Starting SeaweedFS (S3) and the ACC and BuildPass emulators ...", flush=True)
    with Stack.start(Path(args.dir), seed=1) as stack:
        for n, (project, spec) in enumerate(PROJECTS.items()):
            stack.seed_acc(
                project,
                start=START.strftime("%Y-%m-%dT%H:%M:%S"),
                end=(START + timedelta(days=DAYS)).strftime("%Y-%m-%dT%H:%M:%S"),
                seed=100 + n,
                **spec,
            )
        print(
            f"Seeded {sum(s['count'] for s in PROJECTS.values())} photos in {len(PROJECTS)} ACC projects "
            f"over {DAYS} days from {START.date()}",
            flush=True,
        )
        config = stack.config(list(PROJECTS))
        stack.admin("acc", "POST", "/_admin/stats/reset")
        stack.admin("buildpass", "POST", "/_admin/stats/reset")

        began = time.monotonic()
        reports: list[Any] = []
        for day in range(DAYS):
            start, end = START + timedelta(days=day), START + timedelta(days=day + 1)
            t0 = time.monotonic()
            rc, output = stack.run_dag(start.isoformat(), end.isoformat(), config)
            report = stack.report(config, Window(start, end).id)
            print(f"  window {start:%Y-%m-%d}: airflow dags test exit {rc}, {time.monotonic() - t0:.1f} s", flush=True)
            if rc != 0 or report is None:
                print(output[-6000:])
                return 1
            reports.append(report)
        seconds = time.monotonic() - began
        acc = stack.admin("acc", "GET", "/_admin/stats")
        bp = stack.admin("buildpass", "GET", "/_admin/stats")
        totals = Counter()  # type: ignore[var-annotated]
        for report in reports:
            totals.update({k: v for k, v in report["totals"].items()})

        print()
        for report in reports:
            print(render(report))
        end = START + timedelta(days=DAYS)
        check = stack.reconcile(list(PROJECTS), START, end)

        print("Again, the whole range as one window (a backfill over days already copied):", flush=True)
        stack.admin("acc", "POST", "/_admin/stats/reset")
        stack.admin("buildpass", "POST", "/_admin/stats/reset")
        rc, output = stack.run_dag(START.isoformat(), end.isoformat(), config)
        rerun = stack.report(config, Window(START, end).id)
        if rc != 0 or rerun is None:
            print(output[-6000:])
            return 1
        acc2 = stack.admin("acc", "GET", "/_admin/stats")
        bp2 = stack.admin("buildpass", "GET", "/_admin/stats")
        print(render(rerun))
        check_after = stack.reconcile(list(PROJECTS), START, end)
        verified, verify_costs = _verify(stack, config, START, end)
        if "projects" in verified:
            print(render_verify(verified), end="\n\n")

    copied = totals["created"]
    print("Figures")
    print(
        f"- photos: {totals['found']} found, {totals['eligible']} eligible, {copied} created, "
        f"{totals['skipped']} skipped, {totals['failed']} failed, in {DAYS} windows"
    )
    print(
        f"- wall time: {seconds:.1f} s for {DAYS} runs of `airflow dags test` "
        f"({copied / seconds:.1f} photos/s including Airflow's start-up)"
    )
    print(f"- ACC requests: {acc['total']} ({acc['total'] / max(copied, 1):.3f} per photo: {acc['requests']})")
    print(f"- BuildPass requests: {bp['total']} ({bp['total'] / max(copied, 1):.3f} per photo: {bp['requests']})")
    print(
        f"- re-run over all {DAYS} days: created {rerun['totals']['created']}, already present "
        f"{rerun['totals']['present']}, downloads {acc2['requests'].get('oss', 0)}, "
        f"uploads {bp2['requests'].get('bulk-upload', 0) + bp2['requests'].get('upload', 0)}"
    )
    print(f"- reconciliation: {check_after}")
    print(
        f"- acc-buildpass verify over all {DAYS} days: exit {verified['exit']}, "
        f"{verified['totals'].get('confirmed')} of {verified['totals'].get('eligible')} confirmed in BuildPass; "
        f"requests: {verify_costs}"
    )
    ok = (
        check == check_after
        and check["missing"] == check["duplicates"] == check["extra"] == check["bytes_differ"] == 0
        and check["created"] == check["expected"] == copied
        and rerun["totals"]["created"] == 0
        and verified["exit"] == 0
    )
    print("OK: every eligible photo is in BuildPass exactly once, with its bytes" if ok else "FAILED: see above")
    return 0 if ok else 1


def _verify(stack: Stack, config: dict[str, Any], start: datetime, end: datetime) -> tuple[dict[str, Any], str]:
    """``acc-buildpass verify`` over the range, as an operator runs it: its result and what it cost."""
    for api in ("acc", "buildpass"):
        stack.admin(api, "POST", "/_admin/stats/reset")
    done = subprocess.run(
        [Stack.bin("acc-buildpass"), "verify", "--start", start.isoformat(), "--end", end.isoformat(), "--json"],
        env=stack.env(config),
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        result = json.loads(done.stdout)
    except ValueError:
        print(done.stdout[-3000:], done.stderr[-3000:])
        result = {"totals": {}}
    counts = {api: stack.admin(api, "GET", "/_admin/stats")["requests"] for api in ("acc", "buildpass")}
    return {**result, "exit": done.returncode}, f"ACC {counts['acc']}, BuildPass {counts['buildpass']}"


if __name__ == "__main__":
    sys.exit(main())
