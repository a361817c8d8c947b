from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from acc_buildpass.clients.tokens import FileTokenStore, TokenState
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
