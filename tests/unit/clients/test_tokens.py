from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import stat
import time
from pathlib import Path

import pytest
from acc_buildpass.clients.tokens import ACC, BUILDPASS, FileTokenStore, StoreKind, TokenState
from acc_buildpass.errors import ConfigError
from cryptography.fernet import Fernet


def test_state_is_private_and_encrypted(tmp_path: Path) -> None:
    key = Fernet.generate_key().decode()
    store = FileTokenStore(tmp_path, "host|client", fernet_key=key)
    store.save(TokenState(refresh_token="rt-secret-1", seed="s", access_token="at-secret", access_expires_at=1.0))
    raw = store.path.read_bytes()
    assert b"rt-secret-1" not in raw and b"at-secret" not in raw
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600
    assert store.load() == TokenState(
        refresh_token="rt-secret-1", seed="s", access_token="at-secret", access_expires_at=1.0
    )


def _increment(directory: str, rounds: int) -> None:
    store = FileTokenStore(directory, "host|client")
    for _ in range(rounds):
        with store.lock():
            state = store.load()
            n = int(state.refresh_token) if state else 0
            store.save(TokenState(refresh_token=str(n + 1), seed="s"))


def test_lock_serialises_processes(tmp_path: Path) -> None:
    # Read-modify-write from four processes: without the lock, increments would be lost.
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_increment, args=(str(tmp_path), 50)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert all(w.exitcode == 0 for w in workers)
    state = FileTokenStore(tmp_path, "host|client").load()
    assert state is not None and state.refresh_token == "200"


# -- one store, two APIs -----------------------------------------------------------------------


def test_acc_files_keep_their_names_and_buildpass_files_have_their_own(tmp_path: Path) -> None:
    name = hashlib.sha256(b"host|client").hexdigest()[:20]
    acc = FileTokenStore(tmp_path, "host|client")
    buildpass = FileTokenStore(tmp_path, "host|client", kind=BUILDPASS)
    assert acc.kind is ACC and acc.path == tmp_path / f"acc-token-{name}.json"  # stores written before still read
    assert buildpass.path == tmp_path / f"buildpass-token-{name}.json"
    with acc.lock(), buildpass.lock():  # one lock each: holding both at once does not deadlock
        acc.save(TokenState(refresh_token="rt", seed="s"))
        buildpass.save(TokenState(seed="b", access_token="at", access_expires_at=1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"acc-token-{name}.json",
        f"acc-token-{name}.lock",
        f"buildpass-token-{name}.json",
        f"buildpass-token-{name}.lock",
    ]
    assert acc.load() == TokenState(refresh_token="rt", seed="s")


def test_an_acc_file_written_before_buildpass_shared_the_store_still_loads(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path, "https://developer.api.autodesk.com|client")
    old = {"refresh_token": "rt-1", "seed": "abc", "access_token": "at-1", "access_expires_at": 5.0, "updated_at": 4.0}
    store.path.write_text(json.dumps(old))
    assert store.load() == TokenState("rt-1", "abc", "at-1", 5.0, 4.0)


def test_a_buildpass_state_has_no_refresh_token(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path, "k", kind=BUILDPASS)
    store.save(TokenState(seed="s", access_token="at", access_expires_at=time.time() + 3600))
    assert json.loads(store.path.read_bytes())["refresh_token"] == ""
    state = store.load()
    assert state is not None and state.refresh_token == "" and state.access_valid()


@pytest.mark.parametrize(
    ("kind", "what_to_do"),
    [
        (ACC, "restore the key, or delete the file and set a fresh extra.refresh_token"),
        (BUILDPASS, "restore the key, or delete the file (BuildPass then issues a new token)"),
    ],
)
def test_a_store_that_cannot_be_read_is_named_with_its_api(tmp_path: Path, kind: StoreKind, what_to_do: str) -> None:
    FileTokenStore(tmp_path, "k", fernet_key=Fernet.generate_key().decode(), kind=kind).save(TokenState(seed="s"))
    other_key = FileTokenStore(tmp_path, "k", fernet_key=Fernet.generate_key().decode(), kind=kind)
    with pytest.raises(ConfigError) as caught:
        other_key.load()
    assert str(caught.value) == (
        f"the {kind.api} token store {other_key.path} cannot be decrypted with the configured key: {what_to_do}"
    )
    with pytest.raises(ConfigError, match=rf"^the {kind.api} token store .* is encrypted but no key is configured$"):
        FileTokenStore(tmp_path, "k", kind=kind).load()


def test_airflows_rotated_fernet_keys_read_the_old_and_write_with_the_first(tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    FileTokenStore(tmp_path, "k", fernet_key=old).save(TokenState(refresh_token="rt", seed="s"))
    rotating = FileTokenStore(tmp_path, "k", fernet_key=f"{new},{old}")  # Airflow's [core] fernet_key while rotating
    assert rotating.load() == TokenState(refresh_token="rt", seed="s")
    rotating.save(TokenState(refresh_token="rt-2", seed="s"))
    assert FileTokenStore(tmp_path, "k", fernet_key=new).load() == TokenState(refresh_token="rt-2", seed="s")
    with pytest.raises(ValueError, match="Fernet key"):
        FileTokenStore(tmp_path, "k", fernet_key="not-a-key")
