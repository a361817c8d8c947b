"""Every DAG file, checked the same way: it parses without import errors, and its DAG has tags,
an owner, retries set, its module docstring as ``doc_md``, and nothing heavy at parse time.

What is particular to one DAG (its tasks, schedule, form) is tested in that DAG's own module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from acc_buildpass import settings

from tests.dags.conftest import DAGS

DAG_FILES = {
    settings.COPY_DAG_ID: "acc_to_buildpass_photos.py",
    settings.FOLLOW_EDITS_DAG_ID: "acc_buildpass_follow_edits.py",
    settings.OPERATIONS_DAG_ID: "acc_buildpass_operations.py",
}
OWNER = "acc-buildpass"
# What a DAG file must not pull in when the DAG processor parses it: the steps' libraries are for
# the tasks (pyarrow for manifests, boto3 for S3, requests for the APIs).
HEAVY = ("pandas", "pyarrow", "boto3", "botocore", "s3transfer", "requests")
PARSE = """
import runpy, sys
import pendulum
from airflow.sdk import Asset, Param, dag, get_current_context, task, task_group
from airflow.timetables.interval import CronDataIntervalTimetable
before = set(sys.modules)
runpy.run_path(sys.argv[1])
print(" ".join(sorted(set(sys.modules) - before)))
"""


def test_the_bag_has_every_dag_and_no_import_error(dag_bag: Any) -> None:
    assert dag_bag.import_errors == {}
    assert set(dag_bag.dags) == set(DAG_FILES)
    assert {Path(f).name for f in (dag.fileloc for dag in dag_bag.dags.values())} == set(DAG_FILES.values())
    assert sorted(p.name for p in DAGS.glob("*.py")) == sorted(DAG_FILES.values())  # no DAG file untested


@pytest.fixture(params=sorted(DAG_FILES), ids=str)
def dag(request: pytest.FixtureRequest, dag_bag: Any) -> Any:
    return dag_bag.dags[request.param]


def test_tags_name_the_systems(dag: Any) -> None:
    assert set(dag.tags) >= {"acc", "buildpass"}


def test_an_owner_and_retries_are_set_for_every_task(dag: Any) -> None:
    assert dag.default_args["owner"] == OWNER
    assert isinstance(dag.default_args["retries"], int)  # 0 is a choice, but a made one
    for task in dag.tasks:
        assert task.owner == OWNER, task.task_id
        assert isinstance(task.retries, int) and task.retries >= 0, task.task_id


def test_the_module_docstring_is_the_doc_md(dag: Any) -> None:
    source = (DAGS / DAG_FILES[dag.dag_id]).read_text()
    docstring = ast.get_docstring(ast.parse(source), clean=False)
    assert dag.doc_md and dag.doc_md == docstring
    assert dag.doc_md.lstrip().startswith("### ")  # a heading in the UI's DAG docs


@pytest.mark.parametrize("file", sorted(DAG_FILES.values()))
def test_nothing_heavy_at_parse_time(file: str) -> None:
    source = (DAGS / file).read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not any(word in line for line in top_level for word in ("pandas", "requests", "boto3"))
    # Of the package, only its shared names, which import nothing at all.
    ours = [line for line in top_level if "acc_buildpass" in line]
    assert ours == ["from acc_buildpass import settings"]
    settings_source = (DAGS.parent / "plugins" / "acc_buildpass" / "settings.py").read_text()
    imports = [line for line in settings_source.splitlines() if line.startswith(("import ", "from "))]
    assert all(line.startswith(("from __future__ ", "from typing ")) for line in imports), imports
    # What parsing really imports, beyond Airflow's own names the file uses.
    parsed = subprocess.run([sys.executable, "-c", PARSE, str(DAGS / file)], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    loaded = parsed.stdout.split()
    assert "acc_buildpass.dag_tasks" in loaded  # the check sees the DAG's body run
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []
