"""Local emulators of the ACC and BuildPass APIs (standard library only). Contract: SPEC.md.

import sandbox
box = sandbox.start()            # both servers on free ports
box.acc_url, box.buildpass_url   # http://127.0.0.1:PORT
box.acc, box.buildpass           # the app objects (state, admin helpers)
box.stop()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.acc import AccApp
from sandbox.buildpass import BuildPassApp
from sandbox.http import Serving

__all__ = ["AccApp", "BuildPassApp", "Sandbox", "start"]


@dataclass
class Sandbox:
    acc: AccApp
    buildpass: BuildPassApp
    _acc_server: Serving
    _buildpass_server: Serving

    @property
    def acc_url(self) -> str:
        return self._acc_server.url

    @property
    def buildpass_url(self) -> str:
        return self._buildpass_server.url

    def urls(self) -> dict[str, str]:
        return {"acc_url": self.acc_url, "buildpass_url": self.buildpass_url}

    def stop(self) -> None:
        self._acc_server.stop()
        self._buildpass_server.stop()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start(acc_port: int = 0, buildpass_port: int = 0, seed: int = 0, host: str = "127.0.0.1") -> Sandbox:
    """Start both emulators on ``host`` (loopback unless told; port 0 = a free port) in daemon threads."""
    acc = AccApp(seed=seed)
    buildpass = BuildPassApp(seed=seed)
    acc_server = Serving(acc, acc_port, host)
    try:
        buildpass_server = Serving(buildpass, buildpass_port, host)
    except BaseException:
        acc_server.stop()
        raise
    return Sandbox(acc, buildpass, acc_server, buildpass_server)
