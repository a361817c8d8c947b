"""Every API path in one module: templates filled in strictly, and the clients closeable."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from acc_buildpass.clients import endpoints
from acc_buildpass.clients.acc import AccClient
from acc_buildpass.clients.buildpass import BuildPassClient
from acc_buildpass.clients.tokens import FileTokenStore

TEMPLATES = {name: value for name, value in vars(endpoints).items() if name.isupper() and value.startswith("/")}
CLIENTS = Path(endpoints.__file__).parent


def test_a_template_takes_exactly_its_ids() -> None:
    assert endpoints.path(endpoints.BUILDPASS_PHOTO, builder_id="buil_x", photo_id="ph-1") == (
        "/builders/buil_x/photos/ph-1"
    )
    assert endpoints.path(endpoints.ACC_HUBS) == "/project/v1/hubs"
    with pytest.raises(ValueError, match=r"takes \['builder_id', 'photo_id'\], given \['builder_id'\]"):
        endpoints.path(endpoints.BUILDPASS_PHOTO, builder_id="buil_x")
    with pytest.raises(ValueError, match=r"given \['builder_id', 'project_id'\]"):
        endpoints.path(endpoints.BUILDPASS_PHOTOS, builder_id="buil_x", project_id="typo")


def test_every_template_is_a_path_with_named_ids_only() -> None:
    assert len(TEMPLATES) == 13
    for name, template in TEMPLATES.items():
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
        assert all(field.isidentifier() for field in fields), name
        assert "//" not in template and not template.endswith("/"), name


def test_no_client_spells_a_path_of_its_own() -> None:
    for module in ("acc.py", "buildpass.py"):
        source = (CLIENTS / module).read_text()
        for fragment in ('"/builders', '"/oauth', '"/construction', '"/project/', '"/authentication'):
            assert fragment not in source, (module, fragment)


def test_clients_close_their_session(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path, key="k")
    with AccClient("https://acc.example", "i", "s", "r", store) as acc:
        adapter = acc.session.get_adapter("https://acc.example")
        adapter.poolmanager.connection_from_url("https://acc.example")
        assert len(adapter.poolmanager.pools) == 1
    assert len(adapter.poolmanager.pools) == 0  # closed on leaving the block
    buildpass = BuildPassClient("https://bp.example", "i", "s")
    adapter = buildpass.session.get_adapter("https://bp.example")
    adapter.poolmanager.connection_from_url("https://bp.example")
    buildpass.close()
    assert len(adapter.poolmanager.pools) == 0
