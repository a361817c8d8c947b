"""Where a project's photos go in BuildPass: the mapped folder, else the one named by the Variable,
made once and remembered between runs.

The folder id is kept in the staging bucket, so an hourly window with photos asks BuildPass
nothing before its upload: no mapping check, no folder listing. The first run of a project
checks the mapping (naming the key to fix) and finds or makes the folder; a folder deleted in
BuildPass since is found again when the upsert answers 404 (:func:`found_again`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
from pathlib import Path

from acc_buildpass.clients.buildpass import BuildPassClient, Folder
from acc_buildpass.clients.tokens import exclusive
from acc_buildpass.config import PipelineConfig, ProjectMapping
from acc_buildpass.errors import AuthError, ConfigError, NotFound, ServerError, TransportError
from acc_buildpass.storage import Store

log = logging.getLogger(__name__)


def target(
    buildpass: BuildPassClient, store: Store, config: PipelineConfig, index: int, mapping: ProjectMapping
) -> str:
    """The folder id of mapping ``index``: remembered, else checked and resolved (then remembered).

    Task processes on one host resolve a project's folder one at a time (the others then find
    it remembered); processes on several hosts may race, and settle on the oldest folder.

    :raises ConfigError: the BuildPass side of the mapping is wrong, naming the key to fix
    :raises ApiError: BuildPass failed otherwise
    """
    key = store.layout.folder_cache(mapping.builder_id, mapping.buildpass_project_id)
    wanted = {"configured": mapping.buildpass_folder_id, "folder_name": config.folder_name}
    remembered = _remembered(store, key, wanted)
    if remembered:
        return remembered
    with _host_lock(f"{store.bucket}/{key}"):
        remembered = _remembered(store, key, wanted)
        if remembered:
            return remembered
        problem, listed = _checked(buildpass, index, mapping)
        if problem:
            raise ConfigError(problem)
        folder_id = resolve_folder(buildpass, mapping, config.folder_name, listed)
        store.put_json(key, {**wanted, "folder_id": folder_id})
    return folder_id


def _remembered(store: Store, key: str, wanted: dict[str, str | None]) -> str | None:
    cached = store.get_json(key)
    if isinstance(cached, dict) and cached.get("folder_id") and all(cached.get(k) == v for k, v in wanted.items()):
        return str(cached["folder_id"])
    return None


def _host_lock(name: str) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock shared by the processes of this host (a file in the temporary directory)."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:20]
    return exclusive(Path(tempfile.gettempdir()) / f"acc-buildpass-folder-{digest}.lock")


def found_again(
    buildpass: BuildPassClient, store: Store, config: PipelineConfig, mapping: ProjectMapping
) -> str | None:
    """After BuildPass answered 404 for the remembered folder: forget it and resolve it again.

    :returns: the folder id to use now, or None when the folder is the mapped one (the operator's
        to fix: the photos fail, naming BuildPass's answer)
    """
    if mapping.buildpass_folder_id:
        return None
    store.delete(store.layout.folder_cache(mapping.builder_id, mapping.buildpass_project_id))
    log.warning("%s: the remembered BuildPass folder is gone; looking it up again", mapping.label)
    return target(buildpass, store, config, config.projects.index(mapping), mapping)


def buildpass_mapping_problem(buildpass: BuildPassClient, index: int, mapping: ProjectMapping) -> str | None:
    """What to fix when mapping ``index``'s BuildPass builder, project or folder is wrong, else None.

    :raises ApiError: any other failure
    """
    return _checked(buildpass, index, mapping)[0]


def _checked(buildpass: BuildPassClient, index: int, mapping: ProjectMapping) -> tuple[str | None, list[Folder]]:
    """(what to fix or None, the project's folders): one listing proves the builder and project."""
    try:
        listed = buildpass.list_folders(mapping.builder_id, mapping.buildpass_project_id)
    except NotFound:
        return (
            f"projects[{index}].buildpass_project_id {mapping.buildpass_project_id!r}: no such project "
            f"in BuildPass builder {mapping.builder_id!r}"
        ), []
    except AuthError as exc:
        if exc.status != 403:
            raise
        return (
            f"projects[{index}].builder_id {mapping.builder_id!r}: BuildPass refused access (403): use a builder "
            "connected to this client, with the read:photos and write:photos scopes"
        ), []
    if mapping.buildpass_folder_id:
        try:
            buildpass.get_folder(mapping.builder_id, mapping.buildpass_folder_id)
        except NotFound:
            return (
                f"projects[{index}].buildpass_folder_id {mapping.buildpass_folder_id!r}: no such folder "
                f"in builder {mapping.builder_id!r}"
            ), listed
    return None, listed


FOLDER_ATTEMPTS = 3  # creates of a folder whose answers were lost, each after looking for it


def resolve_folder(
    buildpass: BuildPassClient, mapping: ProjectMapping, name: str, listed: list[Folder] | None = None
) -> str:
    """The folder photos go to: the mapped one, else the one named ``name`` (made once).

    Two runs may create the folder at the same moment; both then settle on the oldest one
    and the loser removes its own, still empty. When the answer to a create is lost, the
    folder is looked for by name before it is created again.

    :param listed: the project's folders, when just listed
    """
    if mapping.buildpass_folder_id:
        return mapping.buildpass_folder_id
    existing = _folders_named(buildpass, mapping, name) if listed is None else [f for f in listed if f.name == name]
    if existing:
        return min(existing, key=lambda f: (f.created_at, f.id)).id
    for attempt in range(1, FOLDER_ATTEMPTS + 1):
        try:
            mine = buildpass.create_folder(mapping.builder_id, mapping.buildpass_project_id, name)
            break
        except (TransportError, ServerError) as exc:
            if attempt == FOLDER_ATTEMPTS:
                raise
            log.warning("Creating BuildPass folder %r: outcome unknown (%s); looking for it", name, exc)
            existing = _folders_named(buildpass, mapping, name)
            if existing:
                return min(existing, key=lambda f: (f.created_at, f.id)).id
    existing = _folders_named(buildpass, mapping, name)
    oldest = min(existing or [mine], key=lambda f: (f.created_at, f.id))
    if oldest.id != mine.id:
        buildpass.delete_folder(mapping.builder_id, mine.id)
    log.info("Created BuildPass folder %r (%s) in %s", name, oldest.id, mapping.buildpass_project_id)
    return oldest.id


def _folders_named(buildpass: BuildPassClient, mapping: ProjectMapping, name: str) -> list[Folder]:
    return [f for f in buildpass.list_folders(mapping.builder_id, mapping.buildpass_project_id) if f.name == name]
