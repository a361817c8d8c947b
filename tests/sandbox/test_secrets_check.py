"""include/sandbox/secrets_check.py: finding secrets in Airflow's logs and metadata DB."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sandbox.secrets_check import collect_airflow_texts, collect_db_texts, find_leaks, secret_prefix

ACCESS = "eyJhbGciOiJIUzI1NiJ9-access-token-value"
REFRESH = "rt_0123456789abcdefghijklmnopqrstuvwxyz"
S3_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def test_find_leaks_reports_where_and_a_prefix_only() -> None:
    texts = {
        "log:a.log": f"refreshed; token {ACCESS} stored",
        "log:b.log": "nothing to see",
        "xcom:x": json.dumps({"keys": [REFRESH, ACCESS]}),
    }
    leaks = find_leaks([ACCESS, REFRESH, "never-issued-secret"], texts)
    assert leaks == [
        ("log:a.log", secret_prefix(ACCESS)),
        ("xcom:x", secret_prefix(ACCESS)),
        ("xcom:x", secret_prefix(REFRESH)),
    ]
    for _, prefix in leaks:
        assert ACCESS not in prefix and REFRESH not in prefix
        assert len(prefix.rstrip(".")) <= 6


def test_find_leaks_sees_encoded_forms_and_ignores_empty_secrets() -> None:
    from urllib.parse import quote, quote_plus

    texts = {
        "form": f"grant_type=refresh_token&secret={quote_plus(S3_SECRET)}",
        "url": f"https://x/y?s={quote(S3_SECRET, safe='')}",
        "json": '{"s": "' + S3_SECRET.replace("/", "\\/") + '"}',  # JSON encoders may escape "/"
        "clean": "S3 configured",
    }
    leaks = find_leaks([S3_SECRET, "", S3_SECRET], texts)
    assert leaks == [(where, secret_prefix(S3_SECRET)) for where in ("form", "json", "url")]
    assert find_leaks([""], {"any": "text"}) == []
    assert find_leaks([], {"any": "text"}) == []


def test_secret_prefix_never_gives_much_of_a_short_secret() -> None:
    assert secret_prefix("abcdefgh") == "ab..."
    assert secret_prefix("abc") == "a..."
    assert secret_prefix(ACCESS) == ACCESS[:6] + "..."


def _airflow_db(path: Path, *, with_rendered: bool = True) -> None:
    db = sqlite3.connect(path)
    # The columns Airflow 3 has (airflow db migrate), reduced to what matters here.
    db.execute(
        "CREATE TABLE xcom (dag_run_id INTEGER, task_id VARCHAR(250), map_index INTEGER DEFAULT -1, "
        '"key" VARCHAR(512), dag_id VARCHAR(250), run_id VARCHAR(250), value JSON, timestamp TIMESTAMP)'
    )
    db.execute(
        "INSERT INTO xcom VALUES (1, 'extract', -1, 'return_value', 'acc_to_buildpass_photos', 'run1', ?, '')",
        (json.dumps({"manifest": "acc-photos/windows/x/manifest", "token": REFRESH}),),
    )
    db.execute(
        "INSERT INTO xcom VALUES (1, 'batch.stage', 3, 'return_value', 'acc_to_buildpass_photos', 'run1', ?, '')",
        (json.dumps({"staged": 10}).encode(),),  # older schemas stored bytes
    )
    db.execute("INSERT INTO xcom VALUES (1, 'report', -1, 'other', 'acc_to_buildpass_photos', 'run1', NULL, '')")
    if with_rendered:
        db.execute(
            "CREATE TABLE rendered_task_instance_fields (dag_id VARCHAR(250), task_id VARCHAR(250), "
            "run_id VARCHAR(250), map_index INTEGER DEFAULT -1, rendered_fields JSON NOT NULL, k8s_pod_yaml JSON)"
        )
        db.execute(
            "INSERT INTO rendered_task_instance_fields "
            "VALUES ('acc_to_buildpass_photos', 'publish', 'run1', 0, ?, NULL)",
            (json.dumps({"op_kwargs": {"secret": S3_SECRET}}),),
        )
    db.execute("CREATE TABLE dag_run (id INTEGER, dag_id VARCHAR(250), run_id VARCHAR(250), conf JSON)")
    db.execute("INSERT INTO dag_run VALUES (1, 'acc_to_buildpass_photos', 'run1', ?)", (json.dumps({"w": 1}),))
    db.commit()
    db.close()


def test_collect_airflow_texts_reads_logs_xcoms_and_rendered_fields(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    task_log = home / "logs" / "dag_id=acc_to_buildpass_photos" / "run_id=run1" / "task_id=extract" / "attempt=1.log"
    task_log.parent.mkdir(parents=True)
    task_log.write_text(json.dumps({"event": f"Bearer {ACCESS}"}) + "\n")
    (home / "logs" / "dag_processor").mkdir(parents=True)
    (home / "logs" / "dag_processor" / "x.log").write_bytes(b"plain \xff bytes\n")
    _airflow_db(home / "airflow.db")

    texts = collect_airflow_texts(home)
    assert texts["log:dag_id=acc_to_buildpass_photos/run_id=run1/task_id=extract/attempt=1.log"].startswith(
        '{"event": "Bearer eyJ'
    )
    assert texts["log:dag_processor/x.log"] == "plain \ufffd bytes\n"
    xcom = "xcom:acc_to_buildpass_photos/run1/extract/-1/return_value:value"
    assert json.loads(texts[xcom])["token"] == REFRESH
    assert texts["xcom:acc_to_buildpass_photos/run1/batch.stage/3/return_value:value"] == '{"staged": 10}'
    rendered = "rendered_task_instance_fields:acc_to_buildpass_photos/run1/publish/0:rendered_fields"
    assert S3_SECRET in texts[rendered]
    assert texts["dag_run:acc_to_buildpass_photos/run1:conf"] == '{"w": 1}'
    assert not any(k.startswith("xcom:") and k.endswith("/other:value") for k in texts)  # NULL value skipped

    leaks = find_leaks([ACCESS, REFRESH, S3_SECRET, "unused-secret-value"], texts)
    assert leaks == sorted(
        [
            ("log:dag_id=acc_to_buildpass_photos/run_id=run1/task_id=extract/attempt=1.log", secret_prefix(ACCESS)),
            (xcom, secret_prefix(REFRESH)),
            (rendered, secret_prefix(S3_SECRET)),
        ]
    )


def test_missing_tables_logs_and_database_are_tolerated(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    home.mkdir()
    assert collect_airflow_texts(home) == {}
    assert not (home / "airflow.db").exists()  # looking did not create an empty database
    _airflow_db(home / "airflow.db", with_rendered=False)
    texts = collect_airflow_texts(home)
    assert not any(k.startswith("rendered_task_instance_fields:") for k in texts)
    assert any(k.startswith("xcom:") for k in texts)
    # A database without any of the tables.
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert collect_db_texts(empty) == {}
