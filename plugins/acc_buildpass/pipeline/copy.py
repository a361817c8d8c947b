"""Copy batches in this process: stage, then publish, each step's outcomes written where the
report reads them (as the DAG's mapped tasks write theirs).

Used for a window small enough for one task (the DAG's extract task) and by
``acc-buildpass backfill`` (a range of any length, one batch after another).
"""

from __future__ import annotations

from collections.abc import Callable

from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.config import PipelineConfig
from acc_buildpass.models import Batch, Outcome
from acc_buildpass.pipeline.publish import publish_batch
from acc_buildpass.pipeline.stage import stage_batch
from acc_buildpass.storage import Store

STEPS = ("stage", "publish")
OnBatch = Callable[[int, int, str], None]  # (photos done, photos in all, the batch's label)


def run_step(
    acc: AccClient | None,
    buildpass: BuildPassClient | None,
    store: Store,
    config: PipelineConfig,
    batch: Batch,
    step: str,
) -> list[Outcome]:
    """Stage or publish (``step``) one batch; its per-photo outcomes are written beside the
    window's other batches for the report. Stage needs ``acc``, publish ``buildpass``."""
    if step == "stage":
        assert acc is not None, "staging needs the ACC client"
        outcomes = stage_batch(acc, store, config, batch)
    else:
        assert buildpass is not None, "publishing needs the BuildPass client"
        outcomes = publish_batch(buildpass, store, config, batch)
    store.put_json(store.layout.batch_outcome(batch.window, batch.index, step), outcomes)
    return outcomes


def copy_batches(
    acc: AccClient,
    buildpass: BuildPassClient,
    store: Store,
    config: PipelineConfig,
    batches: list[Batch],
    on_batch: OnBatch | None = None,
) -> None:
    """Stage and publish each batch in turn (a batch's photos land before the next is downloaded)."""
    total, done = sum(b.count for b in batches), 0
    for batch in batches:
        for step in STEPS:
            run_step(acc, buildpass, store, config, batch, step)
        done += batch.count
        if on_batch is not None:
            on_batch(done, total, batch.label)
