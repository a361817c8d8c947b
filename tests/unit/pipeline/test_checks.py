"""``acc-buildpass check``'s findings (acc_buildpass.pipeline.checks) with an in-memory S3.

The real command, against the emulators and SeaweedFS, is tested in tests/integration/test_cli.py.
"""

from __future__ import annotations

import pytest
from acc_buildpass.models import CheckStatus
from acc_buildpass.pipeline import checks
from acc_buildpass.storage import Layout, Store

from tests.fakes import MemoryS3


def test_check_pool_names_a_missing_pool_and_an_unreachable_db_once() -> None:
    assert checks.check_pool("buildpass_api", lambda name: True).status == checks.OK
    missing = checks.check_pool("buildpass_api", lambda name: False)
    assert missing.problem and 'airflow pools set buildpass_api 4 "BuildPass' in missing.line()

    def down(name: str) -> bool:
        raise RuntimeError("(sqlite3.OperationalError) unable to open database file\n[SQL: ...]")

    db = checks.check_pool("buildpass_api", down)
    assert db.problem and db.subject == "Airflow metadata DB"
    assert "unable to open database file" in db.message and "[SQL" not in db.message


def staging(s3: MemoryS3) -> list[checks.Finding]:
    return checks.check_staging(Store(s3, Layout("staging", "t")), "acc_buildpass_staging")


def test_staging_writes_and_deletes_one_probe_object() -> None:
    s3 = MemoryS3()
    [finding] = staging(s3)
    assert finding.line() == "OK staging s3://staging/t/: bucket exists; a probe object was written and deleted"
    assert finding.status == CheckStatus.OK == "OK" and not finding.problem
    assert (s3.calls["HeadBucket"], s3.calls["PutObject"], s3.calls["DeleteObject"]) == (1, 1, 1)
    assert s3.objects == {}  # the probe is gone


@pytest.mark.parametrize(
    ("refuse", "unreachable", "message"),
    [
        (
            {"HeadBucket": "404"},
            set(),
            "staging bucket 'staging' is not usable (404): create it or fix 'staging_bucket' in the Variable "
            "and the connection acc_buildpass_staging",
        ),
        (
            {},
            {"HeadBucket"},
            'S3 not reachable (Could not connect to the endpoint URL: "http://127.0.0.1:1/s3"): '
            "fix extra.endpoint_url of connection acc_buildpass_staging",
        ),
        (
            {"PutObject": "AccessDenied"},
            set(),
            "cannot write and delete t/check/probe-{token} (AccessDenied): give the credentials of connection "
            "acc_buildpass_staging s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket on the bucket",
        ),
        (
            {"DeleteObject": "AccessDenied"},
            set(),
            "cannot write and delete t/check/probe-{token} (AccessDenied): give the credentials of connection "
            "acc_buildpass_staging s3:PutObject, s3:GetObject, s3:DeleteObject and s3:ListBucket on the bucket",
        ),
        (
            {},
            {"PutObject"},
            'S3 write failed (Could not connect to the endpoint URL: "http://127.0.0.1:1/s3"): '
            "fix connection acc_buildpass_staging",
        ),
    ],
)
def test_staging_names_what_to_fix_word_for_word(refuse: dict[str, str], unreachable: set[str], message: str) -> None:
    s3 = MemoryS3()
    s3.refuse, s3.unreachable = refuse, unreachable
    [finding] = staging(s3)
    assert finding.status == CheckStatus.PROBLEM and finding.subject == "staging s3://staging/t/"
    probe_keys = [k for k in s3.objects if "/check/probe-" in k]
    token = finding.message.partition("t/check/probe-")[2].partition(" ")[0]
    assert finding.message == message.format(token=token)
    assert len(probe_keys) == (1 if "DeleteObject" in refuse else 0)  # nothing left behind but what S3 refused
