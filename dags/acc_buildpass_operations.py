"""
### Operate the ACC → BuildPass copy: check, plan, replay, verify

The command line's `acc-buildpass check | plan | replay | verify`, from a form: **Trigger** this DAG,
pick the action and the window. Same configuration as `acc_to_buildpass_photos` (Variable
`acc_buildpass_config`, connections `acc_default`, `buildpass_default`, `acc_buildpass_staging`).

- **check**: sign-ins (the ACC refresh token spent at most once), the staging bucket, every
  mapped project on both sides. One log line per check; the run fails when any problem is found.
- **plan**: dry run of the window: per project, photos and bytes to copy, already in BuildPass,
  skipped and why. Nothing is staged or created. The plan is the run's **Copy report** tab.
- **replay**: retries exactly the photos the window's report lists as failed, exactly once, and
  fails while any still fails. Its result is the run's **Copy report** tab too.
- **verify**: reads BuildPass back (one listing per mapped project, whatever folder a photo is
  in) and reconciles every eligible ACC photo of the window: absent, doubled, wrong size,
  BuildPass photos of the window linked to no eligible ACC photo, and a listing that looks
  capped. Writes nothing to BuildPass; `verify.json` goes beside the window's report. The run
  fails when anything does not match.

The task logs the table the command prints and returns a summary (counts and object keys) as
its XCom. Never retried: a check, a plan or a verify is cheap to trigger again, a replay is.

    airflow dags trigger acc_buildpass_operations \\
      --conf '{"action": "plan", "window_start": "2026-03-01T00:00:00Z", "window_end": "2026-03-02T00:00:00Z"}'
"""

from __future__ import annotations

from typing import Any

import pendulum
from acc_buildpass import settings
from airflow.sdk import Param, dag, get_current_context, task

WINDOW = "Window (plan, replay and verify)"


@dag(
    dag_id=settings.OPERATIONS_DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["acc", "buildpass", "operations"],
    default_args={"owner": "acc-buildpass", "retries": 0},
    params={
        "action": Param(
            settings.DEFAULT_ACTION,
            type="string",
            enum=list(settings.ACTIONS),
            values_display=settings.ACTION_LABELS,
            title="Action",
            description="What to run. Plan, replay and verify need the window below; check ignores it.",
        ),
        "window_start": Param(
            **settings.window_bound(
                "Window start", "Photos created at or after this time (UTC when no zone is given).", WINDOW
            )
        ),
        "window_end": Param(
            **settings.window_bound(
                "Window end",
                "Photos created before this time. For replay: the window exactly as its run had it.",
                WINDOW,
            )
        ),
        "projects": Param(
            None,
            type=["null", "array"],
            items={"type": "string", "minLength": 1},
            uniqueItems=True,
            title="ACC projects",
            description="Only these mapped ACC project ids, one a line (plan, replay, verify). Empty: every mapping.",
            section=WINDOW,
        ),
    },
)
def acc_buildpass_operations() -> None:
    from acc_buildpass import dag_tasks as tasks

    @task(retries=0)
    def operate() -> dict[str, Any]:
        return tasks.operate(get_current_context())

    operate()


acc_buildpass_operations()
