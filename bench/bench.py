"""``make bench``: the real DAG against the emulators and SeaweedFS with realistic latencies.

For each workload, on freshly reset emulators: the pipeline (``airflow dags test --use-executor``
with a LocalExecutor of ``--parallel`` task processes, as a scheduler would run it; ``--parallel 0``
runs the tasks one after another in the ``dags test`` process), then the straight-line floor
(``straight_line.py``, the same total concurrency, no Airflow, staging each photo in S3 as the
pipeline does) on the same workload, and
the ceiling that BuildPass's rate limit implies. Then the hourly regime (``backfill.py``): a
two-day ``airflow backfill create`` under a real scheduler, next to the same photos as one window and
Airflow's floor. Prints the tables, writes ``bench/RESULTS.md``, ``bench/throughput.png`` and
``bench/backfill.json``; ``--only backfill`` runs the hourly regime alone and rewrites only its section
of ``RESULTS.md``. Ratios within one run, not absolute times: these machines are noisy.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "include"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import straight_line
from acc_buildpass.config import PipelineConfig
from sandbox.stack import ACC_CLIENT, BP_CLIENT, BP_PROJECT, BUILDER, ROOT, Stack

HERE = Path(__file__).resolve().parent
START = datetime(2026, 5, 4, tzinfo=UTC)
END = START + timedelta(days=1)
ACC_LATENCY_MS = 50
BP_LATENCY_MS = 80
DOWNLOAD_BANDWIDTH = 8_000_000  # bytes/s per download
BP_LIMIT = (100, 10)  # requests per seconds, per IP
MIN_BP_REQUESTS = {"bulk": 1 / 25 + 1 / 100, "single": 2.0}  # per photo: uploads of 25, upserts of 100


@dataclass
class Result:
    workload: str
    kind: str  # pipeline | floor | re-run
    mode: str
    photos: int
    seconds: float
    acc_api: int = 0
    acc_downloads: int = 0
    bp: int = 0
    bytes_moved: int = 0
    rss_mb: float | None = None
    busy_seconds: float | None = None  # wall time during which at least one task ran
    threads: int = 4
    parallel: int = 1
    eligible: int = 0
    task_rss_mb: dict[str, float] = field(default_factory=dict)  # largest task process of each task id
    bp_429: int = 0  # BuildPass answers of 429: its rate limit hit

    @property
    def rate(self) -> float:
        return self.eligible / self.seconds if self.seconds else 0.0

    @property
    def overhead(self) -> float | None:
        return None if self.busy_seconds is None else max(0.0, 1 - self.busy_seconds / self.seconds)


def fresh(stack: Stack, *, bp_limit: bool = True) -> None:
    """Emulators as new, realistic latencies, a new ACC sign-in, an empty token store."""
    for server in ("acc", "buildpass"):
        stack.admin(server, "POST", "/_admin/reset")
    stack.admin(
        "acc", "POST", "/_admin/faults", {"latency_ms": ACC_LATENCY_MS, "download_bandwidth": DOWNLOAD_BANDWIDTH}
    )
    stack.admin("buildpass", "POST", "/_admin/faults", {"latency_ms": BP_LATENCY_MS})
    limit, window = BP_LIMIT if bp_limit else (0, 10)
    stack.admin("buildpass", "POST", "/_admin/rate-limit", {"limit": limit, "window_seconds": window})
    stack.refresh_token = stack.new_refresh_token()


def seed(stack: Stack, project: str, count: int, large: int, large_mb: int) -> int:
    if count:
        stack.seed_acc(
            project,
            count=count,
            start=START.strftime("%Y-%m-%dT%H:%M:%S"),
            end=END.strftime("%Y-%m-%dT%H:%M:%S"),
            seed=count,
        )
    if large:
        records = [
            {
                "id": f"large-{n:04d}-{uuid.UUID(int=n).hex[:12]}",
                "projectId": project,
                "title": f"Drone survey {n}",
                "mediaType": "NORMAL",
                "size": large_mb * 1024 * 1024,
                "createdAt": (START + timedelta(hours=1, minutes=n)).strftime("%Y-%m-%dT%H:%M:%S"),
                "takenAt": (START + timedelta(hours=1, minutes=n)).strftime("%Y-%m-%dT%H:%M:%S"),
            }
            for n in range(large)
        ]
        stack.admin("acc", "POST", "/_admin/photos", {"project_id": project, "photos": records})
    photos = stack.admin("acc", "GET", f"/_admin/photos?project_id={project}")["photos"]
    return sum(int(p["size"]) for p in photos)


def stats(stack: Stack) -> tuple[int, int, int, int]:
    """(ACC API requests, ACC downloads, BuildPass requests, BuildPass 429s) since the last reset."""
    acc = stack.admin("acc", "GET", "/_admin/stats")["requests"]
    bp = stack.admin("buildpass", "GET", "/_admin/stats")
    downloads = acc.get("oss", 0) + acc.get("asset", 0)
    return sum(acc.values()) - downloads, downloads, bp["total"], bp["events"].get("rate_limited", 0)


def busy_seconds(stack: Stack, since: str) -> float:
    """Wall time during which at least one task instance ran (the union of their intervals)."""
    db = sqlite3.connect(stack.root / "airflow" / "airflow.db")
    try:
        rows = db.execute(
            "SELECT julianday(start_date) * 86400, julianday(end_date) * 86400 FROM task_instance "
            "WHERE start_date >= ? AND end_date IS NOT NULL ORDER BY start_date",
            (since,),
        ).fetchall()
    finally:
        db.close()
    busy, reach = 0.0, float("-inf")
    for start, end in rows:
        if end > reach:
            busy += end - max(start, reach)
            reach = end
    return busy


def task_peaks(log: Path) -> dict[str, float]:
    """Largest resident size of each task's processes, from the line every task logs at its end."""
    peaks: dict[str, float] = {}
    text = log.read_text(errors="replace")
    for step, peak in re.findall(r"memory of this task process: \d+ MB when (\w+) began, peak (\d+) MB", text):
        peaks[step] = max(peaks.get(step, 0.0), float(peak))
    return peaks


def _measured(command: list[str], env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """Run a command; (exit code, seconds, peak RSS in MB of it and its children)."""
    began = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), time.monotonic() - began, usage.ru_maxrss / 1024


def run_pipeline(
    stack: Stack,
    workload: str,
    kind: str,
    config: dict[str, Any],
    eligible: int,
    moved: int,
    executor: dict[str, str] | None,
) -> Result:
    since = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    command = stack._dag_command(START.isoformat(), END.isoformat())
    if executor:
        command.append("--use-executor")
    log = stack.root / f"bench-{workload}-{kind}.log".replace(" ", "_")
    rc, seconds, rss = _measured(command, {**stack.env(config), **(executor or {})}, log)
    if rc != 0:
        raise SystemExit(f"{workload}: the DAG run failed (exit {rc}); see {log}")
    acc_api, downloads, bp, bp_429 = stats(stack)
    report = stack.report(config, f"{START:%Y%m%dT%H%M%SZ}--{END:%Y%m%dT%H%M%SZ}")
    created = report["totals"]["created"] if report else 0
    return Result(
        workload,
        kind,
        config.get("publish_mode", "bulk"),
        created,
        seconds,
        acc_api,
        downloads,
        bp,
        moved if created else 0,
        rss,
        busy_seconds(stack, since),
        config.get("download_threads", 4),
        int(executor["AIRFLOW__CORE__PARALLELISM"]) if executor else 1,
        eligible=eligible,
        task_rss_mb=task_peaks(log),
        bp_429=bp_429,
    )


def run_floor(stack: Stack, workload: str, project: str, threads: int, parallel: int, eligible: int) -> Result:
    """The hand-written loop with the pipeline's concurrency: its task processes times their threads."""
    from acc_buildpass.clients.buildpass import BuildPassClient

    bp = BuildPassClient(stack.buildpass_url, *BP_CLIENT)
    s3 = stack.s3()

    def stage(photo: Any, data: bytes) -> None:  # as the pipeline stages: one PUT a photo
        s3.put_object(Bucket=stack.bucket, Key=f"floor/{project}/{photo.id}", Body=data, ContentType="image/jpeg")

    began = time.monotonic()
    created = straight_line.copy(
        stack.acc_url,
        ACC_CLIENT,
        stack.refresh_token,
        bp,
        project,
        straight_line.Target(BUILDER, BP_PROJECT),
        START,
        END,
        download_threads=threads * parallel,
        upload_threads=PipelineConfig.upload_threads * parallel,
        stage=stage,
    )
    seconds = time.monotonic() - began
    acc_api, downloads, bp_requests, bp_429 = stats(stack)
    return Result(
        workload,
        "floor",
        "bulk",
        created,
        seconds,
        acc_api,
        downloads,
        bp_requests,
        threads=threads,
        parallel=parallel,
        eligible=eligible,
        bp_429=bp_429,
    )


def workload(
    stack: Stack,
    n: int,
    *,
    large: int = 0,
    large_mb: int = 200,
    mode: str = "bulk",
    threads: int = 4,
    executor: dict[str, str] | None = None,
    rerun: bool = False,
    floor: bool = True,
    label: str = "",
) -> list[Result]:
    name = f"{n}" + (f" + {large} x {large_mb} MB" if large else "") + label
    project = str(uuid.uuid4())
    config = stack.config(
        [project],
        prefix=f"bench-{project[:8]}",
        publish_mode=mode,
        download_threads=threads,
        batch_size=PipelineConfig.batch_size,  # the product's default, not the test suite's small batches
    )
    fresh(stack)
    moved = seed(stack, project, n, large, large_mb)
    eligible = n + large
    print(f"[{name}, {mode}] pipeline ...", flush=True)
    results = [run_pipeline(stack, name, "pipeline", config, eligible, moved, executor)]
    print(
        f"  {results[-1].rate:.1f} photos/s in {results[-1].seconds:.1f} s; task peaks {results[-1].task_rss_mb}; "
        f"BuildPass {results[-1].bp} requests, {results[-1].bp_429} of them 429; ACC API {results[-1].acc_api}",
        flush=True,
    )
    if rerun:
        for server in ("acc", "buildpass"):
            stack.admin(server, "POST", "/_admin/stats/reset")
        print(f"[{name}] re-run of the same window ...", flush=True)
        results.append(run_pipeline(stack, name, "re-run", config, eligible, 0, executor))
    if floor and mode == "bulk":
        fresh(stack)
        seed(stack, project, n, large, large_mb)
        print(f"[{name}] straight-line floor ...", flush=True)
        results.append(run_floor(stack, name, project, threads, results[0].parallel, eligible))
        print(f"  {results[-1].rate:.1f} photos/s", flush=True)
    return results


def ceiling(mode: str) -> float:
    limit, window = BP_LIMIT
    return limit / window / MIN_BP_REQUESTS[mode]


def table(results: list[Result]) -> list[str]:
    lines = [
        "| workload | mode | run | photos | s | photos/s | vs floor | vs BuildPass ceiling | BuildPass req/photo "
        "| BuildPass 429s | ACC API req/photo | downloads | MB moved "
        "| peak RSS MB: largest task process (its task) / whole run | Airflow overhead |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    floors = {(r.workload, r.mode): r for r in results if r.kind == "floor"}
    for r in results:
        floor = floors.get((r.workload, r.mode)) if r.kind == "pipeline" else None
        per = max(r.eligible, 1)
        ratio_floor = f"{r.rate / floor.rate:.0%}" if floor and floor.rate else ""
        ratio_ceiling = f"{r.rate / ceiling(r.mode):.0%}" if r.kind != "re-run" else ""
        rss = "" if r.rss_mb is None else f"{r.rss_mb:.0f}"
        if r.task_rss_mb:
            step, peak = max(r.task_rss_mb.items(), key=lambda item: item[1])
            rss = f"{peak:.0f} ({step}) / {rss}"
        lines.append(
            f"| {r.workload} | {r.mode} | {r.kind} | {r.photos if r.kind != 're-run' else r.eligible} "
            f"| {r.seconds:.1f} | {r.rate:.1f} | {ratio_floor} | {ratio_ceiling} "
            f"| {r.bp / per:.3f} | {r.bp_429} | {r.acc_api / per:.3f} | {r.acc_downloads} | {r.bytes_moved / 1e6:.1f} "
            f"| {rss} | {'' if r.overhead is None else f'{r.overhead:.0%}'} |"
        )
    return lines


def plot(results: list[Result], sweep: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for kind, marker in (("pipeline", "o"), ("floor", "s")):
        points = sorted(
            (r.eligible, r.rate) for r in results if r.mode == "bulk" and "+" not in r.workload and r.kind == kind
        )
        if points:
            left.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=kind)
    left.axhline(ceiling("bulk"), linestyle="--", color="grey", label="BuildPass rate-limit ceiling")
    left.set_xscale("log")
    left.set_xlabel("photos in the window (N)")
    left.set_ylabel("photos / s")
    left.set_title("Throughput against N (bulk mode)")
    left.legend()
    for kind, marker in (("pipeline", "o"), ("floor", "s")):
        points = sorted((r.parallel * r.threads, r.rate) for r in sweep if r.kind == kind)
        if points:
            right.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=kind)
    right.set_xlabel("download threads in all (task processes x 4)")
    right.set_ylabel("photos / s")
    right.set_title("Throughput against concurrency")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def run_backfill_section(stack: Stack, code: str | None, out: Path) -> list[str]:
    """The hourly regime's section of RESULTS.md (printed too); its rows in backfill.json."""
    import backfill

    rows = backfill.run_all(stack, Path(code).resolve() if code else None)
    lines = backfill.section(rows, backfill.hours_with_photos(stack))
    print("\n".join(lines), flush=True)
    (out / "backfill.json").write_text(json.dumps([r.__dict__ for r in rows], indent=1, default=str))
    return lines


def replace_section(path: Path, lines: list[str]) -> None:
    """Put ``lines`` (a ``## `` section) in place of the section of the same title, else at the end."""
    text = path.read_text().splitlines() if path.exists() else ["# Benchmark results", ""]
    title = lines[0]
    if title in text:
        start = text.index(title)
        end = next((i for i in range(start + 1, len(text)) if text[i].startswith("## ")), len(text))
        text[start:end] = lines
    else:
        text += ["", *lines]
    path.write_text("\n".join(text).rstrip("\n") + "\n")


def only_backfill(args: argparse.Namespace) -> int:
    out = Path(args.out)
    with Stack.start(Path(args.dir), seed=5) as stack:
        lines = run_backfill_section(stack, args.code, out)
    command = "--only backfill" + (f" --code {args.code}" if args.code else "")
    stamp = f"Generated by `make bench BENCH_ARGS='{command}'` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."
    replace_section(out / "RESULTS.md", [*lines[:2], stamp, "", *lines[2:]])
    print(f"\nwrote the section to {out / 'RESULTS.md'} and {out / 'backfill.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="200,2000,10000,20000", help="photo counts of the small-photo workloads")
    parser.add_argument("--large", type=int, default=3, help="how many large photos in the large workload")
    parser.add_argument("--large-mb", type=int, default=200)
    parser.add_argument(
        "--parallel", type=int, default=4, help="task processes at once (LocalExecutor); 0: one after another"
    )
    parser.add_argument("--sweep", default="1,2", help="task processes of the concurrency sweep ('' skips)")
    parser.add_argument("--sweep-n", type=int, default=2000)
    parser.add_argument("--single-n", type=int, default=600, help="photos of the single-create workload (0 skips)")
    parser.add_argument("--out", default=str(HERE))
    parser.add_argument("--dir", default=str(ROOT / ".bench"))
    parser.add_argument("--only", choices=["backfill"], help="run only this section (RESULTS.md keeps the others)")
    parser.add_argument(
        "--code", help="the hourly regime: a checkout whose plugins/ and dags/ Airflow runs (default: this one)"
    )
    args = parser.parse_args(argv)
    if args.only == "backfill":
        return only_backfill(args)
    out = Path(args.out)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    began = time.monotonic()
    results: list[Result] = []
    sweep: list[Result] = []
    with Stack.start(Path(args.dir), seed=5) as stack, contextlib.ExitStack() as running:
        executor = running.enter_context(stack.local_executor(args.parallel)) if args.parallel else None

        def at(parallel: int) -> dict[str, str] | None:
            return {**executor, "AIRFLOW__CORE__PARALLELISM": str(parallel)} if executor else None

        for n in sizes:
            results += workload(stack, n, executor=executor, rerun=(n == sizes[min(1, len(sizes) - 1)]))
        if args.large:
            results += workload(stack, 20, large=args.large, large_mb=args.large_mb, executor=executor, floor=False)
        if args.single_n:
            results += workload(stack, args.single_n, mode="single", executor=executor, floor=False)
        for parallel in [int(p) for p in args.sweep.split(",") if p] if executor else []:
            sweep += workload(stack, args.sweep_n, executor=at(parallel), label=f", {parallel} task processes")
        if sweep and args.sweep_n in sizes:  # the main table's run at --parallel completes the sweep
            sweep += [r for r in results if r.eligible == args.sweep_n and r.kind in ("pipeline", "floor")]
        hourly = run_backfill_section(stack, args.code, out)
    total = time.monotonic() - began

    lines = table(results)
    print("\n".join(lines))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
    command = "make bench" + (f" BENCH_ARGS='{' '.join(argv)}'" if argv else "")
    text = [
        "# Benchmark results",
        "",
        f"Generated by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {total / 60:.1f} min.",
        f"Machine: {machine}.",
        "",
        f"Emulators: ACC {ACC_LATENCY_MS} ms a request, downloads at {DOWNLOAD_BANDWIDTH / 1e6:.0f} MB/s each; "
        f"BuildPass {BP_LATENCY_MS} ms a request, rate limit {BP_LIMIT[0]} requests / {BP_LIMIT[1]} s. "
        "Small photos are 2-20 kB; manifest parts of 500 photos and at most 4 batch tasks (the defaults). "
        "The pipeline is `airflow dags test "
        "--use-executor`: a LocalExecutor runs up to --parallel task processes at once (4 unless the row says "
        "otherwise), each with 4 download and 2 upload threads (a batch task publishes while it stages), "
        "as a scheduler would. The floor is "
        "`bench/straight_line.py` with the same concurrency in one process (4 x 4 download and 4 x 2 upload "
        "threads), no Airflow; it stages each photo in S3 (one PUT) as the pipeline does. "
        "The ceiling is what BuildPass's rate limit allows at the "
        f"fewest requests a photo ({MIN_BP_REQUESTS['bulk']:.2f} in bulk mode: {ceiling('bulk'):.0f} photos/s; "
        f"{MIN_BP_REQUESTS['single']:.0f} in single mode: {ceiling('single'):.0f} photos/s).",
        "",
        "Photos/s counts the whole `airflow dags test` process, Airflow's start-up and shutdown included.",
        "Peak RSS: the largest task process (each task logs its own peak) / the `dags test` process and",
        "its children. Airflow overhead is the share of wall time during which no task of the run was running",
        "(start-up, parsing, scheduling, shutdown).",
        "",
        *lines,
        "",
        "## Throughput against concurrency",
        "",
        *table(sweep),
        "",
        "![throughput](throughput.png)",
        "",
        *hourly,
    ]
    (out / "RESULTS.md").write_text("\n".join(text))
    (out / "results.json").write_text(json.dumps([r.__dict__ | {"rate": r.rate} for r in results + sweep], indent=1))
    plot(results, sweep, out / "throughput.png")
    print(f"\nwrote {out / 'RESULTS.md'} and {out / 'throughput.png'} ({total / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
