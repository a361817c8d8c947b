"""BuildPassClient's access token shared between task processes through a token store, counted by
the BuildPass emulator's own request stats (never by timings)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import sandbox
from acc_buildpass.clients import tokens
from acc_buildpass.clients.buildpass import SCOPES, BuildPassClient, token_store_key
from acc_buildpass.clients.retry import RetryPolicy
from cryptography.fernet import Fernet
from sandbox.buildpass import DEFAULT_BUILDER, DEFAULT_CLIENT, DEFAULT_PROJECT

FAST_RETRY = RetryPolicy(attempts=3, initial_wait=0.01, max_wait=0.02)
CLIENT_ID, SECRET = DEFAULT_CLIENT
PROJECT = DEFAULT_PROJECT[0]


def counts(box: sandbox.Sandbox) -> dict[str, int]:
    seen: dict[str, int] = requests.get(box.buildpass_url + "/_admin/stats", timeout=5).json()["requests"]
    return seen


def store_of(
    directory: Path, box: sandbox.Sandbox, secret: str = SECRET, scope: str = SCOPES, fernet_key: str | None = None
) -> tokens.FileTokenStore:
    """The store as a task process builds it (the hook's key: host, client id, scope, the secret's fingerprint)."""
    key = token_store_key(box.buildpass_url, CLIENT_ID, secret, scope)
    return tokens.FileTokenStore(directory, key, fernet_key=fernet_key, kind=tokens.BUILDPASS)


def client(
    box: sandbox.Sandbox,
    store: tokens.FileTokenStore | None,
    seen: list[str],
    *,
    secret: str = SECRET,
    scope: str = SCOPES,
) -> BuildPassClient:
    """One task process's client; every token it gets or reads is appended to ``seen`` (the log masker's hook)."""
    return BuildPassClient(
        box.buildpass_url, CLIENT_ID, secret, scope=scope, token_store=store, policy=FAST_RETRY, on_secret=seen.append
    )


def test_a_second_process_uses_the_token_the_first_one_stored(box: sandbox.Sandbox, tmp_path: Path) -> None:
    first_seen: list[str] = []
    second_seen: list[str] = []
    first = client(box, store_of(tmp_path, box), first_seen)
    second = client(box, store_of(tmp_path, box), second_seen)  # its own store object: only the directory is shared
    assert first.list_folders(DEFAULT_BUILDER, PROJECT) == []
    assert counts(box) == {"token": 1, "folders": 1}
    assert second.list_folders(DEFAULT_BUILDER, PROJECT) == []
    assert counts(box) == {"token": 1, "folders": 2}  # no token call, and the call was accepted
    assert len(first_seen) == 1 and second_seen == first_seen  # the first one's token, registered with the masker
    second.list_folders(DEFAULT_BUILDER, PROJECT)
    assert counts(box) == {"token": 1, "folders": 3}  # then kept in memory


def test_without_a_store_each_client_asks_for_its_own_token(box: sandbox.Sandbox) -> None:
    for _ in range(2):
        client(box, None, []).list_folders(DEFAULT_BUILDER, PROJECT)
    assert counts(box) == {"token": 2, "folders": 2}


def test_a_refused_token_is_not_reused_from_the_store_and_a_new_one_is_fetched_once(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    first_seen: list[str] = []
    first = client(box, store_of(tmp_path, box), first_seen)
    first.list_folders(DEFAULT_BUILDER, PROJECT)
    # BuildPass forgets every token it issued (as after a revocation): the stored one, still
    # within its lifetime, is answered 401.
    assert requests.post(box.buildpass_url + "/_admin/reset", timeout=5).status_code == 200
    second_seen: list[str] = []
    second = client(box, store_of(tmp_path, box), second_seen)
    assert second.list_folders(DEFAULT_BUILDER, PROJECT) == []
    assert counts(box) == {"token": 1, "folders": 2}  # the stored token refused, one new token, the call again
    assert second_seen[0] == first_seen[0] and len(second_seen) == 2 and second_seen[1] != first_seen[0]
    stored = store_of(tmp_path, box).load()
    assert stored is not None and stored.access_token == second_seen[1]
    # The first process still holds the refused token: on its 401 it reads the store again and
    # takes the one the second process stored, without a token call of its own.
    assert first.list_folders(DEFAULT_BUILDER, PROJECT) == []
    assert counts(box) == {"token": 1, "folders": 4}
    assert first_seen == second_seen


@pytest.mark.parametrize("change", ["secret", "scope"])
def test_a_token_stored_for_another_secret_or_scope_is_not_reused(
    box: sandbox.Sandbox, tmp_path: Path, change: str
) -> None:
    client(box, store_of(tmp_path, box), []).list_folders(DEFAULT_BUILDER, PROJECT)
    if change == "secret":  # the operator rotated the client secret: BuildPass now takes only the new one
        rotated = {"client_id": CLIENT_ID, "client_secret": "rotated-secret", "builder_ids": [DEFAULT_BUILDER]}
        assert requests.post(box.buildpass_url + "/_admin/clients", json=rotated, timeout=5).status_code == 200
        changed = {"secret": "rotated-secret"}
    else:
        changed = {"scope": "read:photos"}
    seen: list[str] = []
    later = client(box, store_of(tmp_path, box, **changed), seen, **changed)
    assert later.list_folders(DEFAULT_BUILDER, PROJECT) == []
    assert counts(box) == {"token": 2, "folders": 2}
    assert len(list(tmp_path.glob("buildpass-token-*.json"))) == 2  # a file of its own, the first one left alone


def test_a_store_built_under_another_key_still_needs_the_same_credentials(box: sandbox.Sandbox, tmp_path: Path) -> None:
    """Whatever name a store's file has, a token stored for other credentials is not used."""
    one_file = tokens.FileTokenStore(tmp_path, "one-file", kind=tokens.BUILDPASS)
    client(box, one_file, []).list_folders(DEFAULT_BUILDER, PROJECT)
    client(box, one_file, [], scope="read:photos").list_folders(DEFAULT_BUILDER, PROJECT)
    client(box, one_file, []).list_folders(DEFAULT_BUILDER, PROJECT)  # the file now holds the read-only token
    assert counts(box) == {"token": 3, "folders": 3}


def test_a_token_about_to_expire_is_not_taken_from_the_store(box: sandbox.Sandbox, tmp_path: Path) -> None:
    assert requests.post(box.buildpass_url + "/_admin/faults", json={"access_token_ttl": 30}, timeout=5).ok
    client(box, store_of(tmp_path, box), []).list_folders(DEFAULT_BUILDER, PROJECT)
    client(box, store_of(tmp_path, box), []).list_folders(DEFAULT_BUILDER, PROJECT)  # 30 s left: under the 60 s margin
    assert counts(box) == {"token": 2, "folders": 2}


def test_the_stored_token_is_private_encrypted_and_never_next_to_the_secret(
    box: sandbox.Sandbox, tmp_path: Path
) -> None:
    key = Fernet.generate_key().decode()
    seen: list[str] = []
    directory = tmp_path / "store"
    client(box, store_of(directory, box, fernet_key=key), seen).list_folders(DEFAULT_BUILDER, PROJECT)
    (path,) = directory.glob("buildpass-token-*.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in directory.iterdir())  # the lock file too
    raw = path.read_bytes()
    assert seen[0].encode() not in raw and SECRET.encode() not in raw
    plain = Fernet(key.encode()).decrypt(raw)
    state = json.loads(plain)
    assert state["access_token"] == seen[0] and state["refresh_token"] == ""
    assert SECRET.encode() not in plain  # only a fingerprint of the key, which holds the secret's fingerprint
    assert state["seed"] == tokens.fingerprint(token_store_key(box.buildpass_url, CLIENT_ID, SECRET))


def test_sign_in_always_asks_buildpass_and_leaves_the_store_alone(box: sandbox.Sandbox, tmp_path: Path) -> None:
    """A sign-in proves today's secret (a stored token would not), wherever the store is, or is not, writable."""
    directory = tmp_path / "store"
    signing_in = client(box, store_of(directory, box), [])
    signing_in.sign_in()
    signing_in.sign_in()
    assert counts(box) == {"token": 2}
    assert not directory.exists()


# Another OS process, as a task process is: it builds its client and store, lists the folders,
# and prints the tokens it got or read.
CHILD = """
import json, sys
from acc_buildpass.clients import tokens
from acc_buildpass.clients.buildpass import BuildPassClient, token_store_key
url, directory, client_id, secret, fernet_key, builder, project = sys.argv[1:]
store = tokens.FileTokenStore(
    directory, token_store_key(url, client_id, secret), fernet_key=fernet_key, kind=tokens.BUILDPASS
)
seen = []
client = BuildPassClient(url, client_id, secret, token_store=store, on_secret=seen.append)
print(json.dumps({"folders": client.list_folders(builder, project), "seen": seen}))
"""


def test_another_os_process_uses_the_stored_token(box: sandbox.Sandbox, tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    seen: list[str] = []
    client(box, store_of(tmp_path, box, fernet_key=key), seen).list_folders(DEFAULT_BUILDER, PROJECT)
    args = [box.buildpass_url, str(tmp_path), CLIENT_ID, SECRET, key, DEFAULT_BUILDER, PROJECT]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"folders": [], "seen": seen}
    assert counts(box) == {"token": 1, "folders": 2}


def test_threads_behind_one_address_wait_for_the_window_to_reset_instead_of_running_into_429s(
    box: sandbox.Sandbox,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    limit = requests.post(box.buildpass_url + "/_admin/rate-limit", json={"limit": 20, "window_seconds": 2}, timeout=5)
    assert limit.status_code == 200
    bp = client(box, None, [])
    statuses: list[int] = []
    bp.session.hooks["response"].append(lambda response, *args, **kwargs: statuses.append(response.status_code))
    with ThreadPoolExecutor(max_workers=6) as pool:  # six requests in flight when the window runs low
        listed = list(pool.map(lambda _: bp.list_folders(DEFAULT_BUILDER, PROJECT), range(45)))
    assert listed == [[]] * 45
    assert statuses.count(429) == 0 and len(statuses) == 46  # the token, then each listing once
