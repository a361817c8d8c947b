"""TLS stays on for every API host but loopback, unless the operator names a sandbox host."""

from __future__ import annotations

import pytest
from acc_buildpass.clients.http import INSECURE_HOSTS_ENV, check_base_url


def test_https_and_loopback_http_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSECURE_HOSTS_ENV, raising=False)
    assert (
        check_base_url("https://developer.api.autodesk.com/", name="ACC host") == "https://developer.api.autodesk.com"
    )
    assert check_base_url("http://127.0.0.1:8081", name="ACC host") == "http://127.0.0.1:8081"
    assert check_base_url("http://localhost:8081", name="ACC host") == "http://localhost:8081"


def test_plain_http_to_another_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSECURE_HOSTS_ENV, raising=False)
    with pytest.raises(ValueError, match="plain http is only allowed for loopback"):
        check_base_url("http://api.buildpass.global", name="BuildPass host")
    with pytest.raises(ValueError, match="not an http"):
        check_base_url("ftp://api.buildpass.global", name="BuildPass host")


def test_named_sandbox_host_may_use_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(INSECURE_HOSTS_ENV, "sandbox, other")
    assert check_base_url("http://sandbox:8082", name="BuildPass host") == "http://sandbox:8082"
    with pytest.raises(ValueError):
        check_base_url("http://api.buildpass.global", name="BuildPass host")
