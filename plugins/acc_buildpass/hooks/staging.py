"""The staging store, through the Amazon provider's S3Hook and the ``aws`` connection.

The one place that says how hard an S3 call tries, for each of its three callers: a task (rides
out a restart), ``check`` (answers in seconds) and the UI's report page (a person is waiting).
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from botocore.config import Config

from acc_buildpass.hooks.connections import require_connection
from acc_buildpass.storage import Layout, Store


@dataclass(frozen=True)
class S3Profile:
    """How hard one S3 call tries: botocore's ``standard`` retry mode, where ``max_attempts``
    counts the retries after the first call, and its timeouts in seconds."""

    name: str
    max_attempts: int
    connect_timeout: int
    read_timeout: int

    def botocore_config(self) -> Config:
        return Config(
            retries={"max_attempts": self.max_attempts, "mode": "standard"},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )


# Object storage restarts and throttles too: a task rides out a minute or so before it fails.
TASK = S3Profile("task", max_attempts=10, connect_timeout=10, read_timeout=120)
# `acc-buildpass check` answers in seconds; the task's profile may wait minutes for a dead host.
CHECK = S3Profile("check", max_attempts=3, connect_timeout=5, read_timeout=120)
# The report page: a person waits for it, and a report is a small object.
UI = S3Profile("ui", max_attempts=3, connect_timeout=5, read_timeout=20)
PROFILES = {profile.name: profile for profile in (TASK, CHECK, UI)}


def staging_store(conn_id: str, layout: Layout, profile: S3Profile = TASK) -> Store:
    """The store on the bucket and prefix of ``layout``, signed with the connection ``conn_id``.

    :raises ConfigError: the connection is not defined (without it boto3 would fall back to
        whatever AWS credentials the process finds around it)
    """
    require_connection(conn_id)
    s3 = S3Hook(aws_conn_id=conn_id, config=profile.botocore_config()).get_conn()
    return Store(s3, layout)
