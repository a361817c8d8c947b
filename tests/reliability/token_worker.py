"""One task-like process for test_parallel_tokens.py (run as a script, not collected by pytest).

Builds the ACC client exactly as a task does (``AccHook("acc_default").get_conn()``, connection
from ``AIRFLOW_CONN_ACC_DEFAULT``), tells the parent it is ready by writing one byte to
``--ready-fd`` and closing it, waits at the barrier (a shared ``flock`` on ``--barrier``, which
the parent holds exclusively until every worker is ready), then makes ``--rounds`` rounds of
API calls. The last line on stdout is ``RESULT {json}`` with the client's refresh count.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
from datetime import UTC, datetime
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--barrier", required=True)
    parser.add_argument("--ready-fd", type=int, default=-1)
    args = parser.parse_args()

    from acc_buildpass.hooks.acc import AccHook
    from acc_buildpass.models import AccPhoto

    client = AccHook("acc_default").get_conn()
    calls = 0
    api = client._api

    def counting(method: str, url: str, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return api(method, url, **kwargs)

    client._api = counting  # type: ignore[method-assign]

    if args.ready_fd >= 0:
        os.write(args.ready_fd, b"R")
        os.close(args.ready_fd)
    barrier = os.open(args.barrier, os.O_RDONLY)
    fcntl.flock(barrier, fcntl.LOCK_SH)  # blocks until the parent lets every worker go at once
    fcntl.flock(barrier, fcntl.LOCK_UN)
    os.close(barrier)

    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    end = datetime.fromisoformat(args.end).replace(tzinfo=UTC)
    listed: list[int] = []
    fetched: list[int] = []
    for n in range(args.rounds):
        photos = [p for p in client.iter_photos(args.project, start, end) if isinstance(p, AccPhoto)]
        listed.append(len(photos))
        ids = sorted(p.id for p in photos)
        chunk = ids[n : n + 10]
        found = client.photos_by_id(args.project, chunk)
        fetched.append(sum(1 for i in chunk if i in found and found[i].file_url))
    print(
        "RESULT " + json.dumps({"refreshes": client.refreshes, "calls": calls, "listed": listed, "fetched": fetched}),
        flush=True,
    )


if __name__ == "__main__":
    main()
