"""Copy a batch: stage its photos and publish them as they are staged, in one process.

Every :data:`PUBLISH_CHUNK` photos staged are uploaded and created (in a thread of their own, a
chunk after another) while the next ones download, so ACC and BuildPass work at the same time.
Both steps' outcomes are written where the report reads them (``stage.json``, ``publish.json``).

Used by the DAG's batch tasks (a big window), its extract task (a window of at most
``batch_size`` photos) and ``acc-buildpass backfill`` (a range of any length, batch after batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import Batch, Outcome, PhotoStatus
from acc_buildpass.pipeline import publish
from acc_buildpass.pipeline.stage import stage_batch
from acc_buildpass.storage import Store

PUBLISH_CHUNK = 100  # photos staged before they are published together (one upsert's worth)
OnBatch = Callable[[int, int, str], None]  # (photos done, photos in all, the batch's label)


def copy_batch(
    acc: AccClient, buildpass: BuildPassClient, store: Store, config: PipelineConfig, batch: Batch
) -> list[Outcome]:
    """Stage one batch and publish it while it stages; returns the publish outcomes.

    A retry is safe at any point: photos staged intact are not downloaded again, and photos the
    ledger records (any attempt after the batch's first) are not sent again.
    """
    started = time.monotonic()
    photos = store.read_manifests(batch.parts)
    by_id = {p.id: p for p in photos}
    first = publish.first_attempt(store, batch)
    chunk: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish") as publisher:
        published: list[Future[list[Outcome]]] = []

        def hand_over(final: bool = False) -> None:
            if chunk and (final or len(chunk) >= PUBLISH_CHUNK):
                job = publish.publish_staged
                published.append(
                    publisher.submit(job, buildpass, store, config, batch, list(chunk), by_id, first=first)
                )
                chunk.clear()

        def staged(outcome: Outcome) -> None:
            if outcome.status == PhotoStatus.STAGED:
                chunk.append(outcome)
                hand_over()

        store.put_json(_outcomes_key(store, batch, "stage"), stage_batch(acc, store, config, batch, staged, photos))
        hand_over(final=True)
        outcomes = [o for future in published for o in future.result()]
    store.put_json(_outcomes_key(store, batch, "publish"), outcomes)
    publish.log_published(batch, started, outcomes)
    return outcomes


def _outcomes_key(store: Store, batch: Batch, step: str) -> str:
    return store.layout.batch_outcome(batch.window, batch.index, step)


def copy_batches(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    batches: list[Batch],
    on_batch: OnBatch | None = None,
) -> None:
    """Copy each batch in turn (:func:`copy_batch`)."""
    total, done = sum(b.count for b in batches), 0
    for batch in batches:
        copy_batch(acc, buildpass, store, config, batch)
        done += batch.count
        if on_batch is not None:
            on_batch(done, total, batch.label)
