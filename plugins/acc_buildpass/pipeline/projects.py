"""Projects: what the credentials can see in ACC, and a starting Variable to edit."""

from __future__ import annotations

from typing import Any

from acc_buildpass.clients.acc import AccClient, AccHub, AccProject
from acc_buildpass.config import PipelineConfig

BUILDER_PLACEHOLDER = "<BuildPass builder id>"


PROJECT_PLACEHOLDER = "<BuildPass project id>"


BUCKET_PLACEHOLDER = "<staging bucket>"


def discover(acc: AccClient) -> list[tuple[AccHub, list[AccProject]]]:
    """Every hub the user sees, with its projects (Data Management)."""
    return [(hub, acc.list_projects(hub.id)) for hub in acc.list_hubs()]


def known_builders(config: PipelineConfig | None, connection_extra: dict[str, Any] | None) -> dict[str, list[str]]:
    """Builder ids (with their mapped BuildPass projects) from the Variable and the connection.

    BuildPass documents no endpoint that lists a builder's projects, so this is all there is:
    the connection's optional ``extra.builder_ids`` (or ``builder_id``) and the mappings.
    """
    builders: dict[str, list[str]] = {}
    extra = connection_extra or {}
    raw = extra.get("builder_ids") or extra.get("builder_id") or []
    for builder in [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else []:
        for one in str(builder).split(","):
            if one.strip():
                builders.setdefault(one.strip(), [])
    for mapping in config.projects if config else ():
        projects = builders.setdefault(mapping.builder_id, [])
        if mapping.buildpass_project_id not in projects:
            projects.append(mapping.buildpass_project_id)
    return builders


def starter_config(
    projects: list[AccProject], config: PipelineConfig | None, builders: dict[str, list[str]]
) -> dict[str, Any]:
    """A Variable to edit: every ACC project, mapped as the current Variable maps it, or to
    placeholders that ``PipelineConfig.from_variable`` refuses until they are replaced."""
    mapped = {m.acc_project_id: m for m in config.projects} if config else {}
    only_builder = next(iter(builders)) if len(builders) == 1 else BUILDER_PLACEHOLDER
    entries = []
    for project in projects:
        current = mapped.get(project.id)
        entries.append(
            {
                "acc_project_id": project.id,
                "acc_project_name": project.name,
                "builder_id": current.builder_id if current else only_builder,
                "buildpass_project_id": current.buildpass_project_id if current else PROJECT_PLACEHOLDER,
                "buildpass_folder_id": current.buildpass_folder_id if current else None,
            }
        )
    return {
        "staging_bucket": config.staging_bucket if config else BUCKET_PLACEHOLDER,
        "staging_prefix": config.staging_prefix if config else "acc-photos",
        "projects": entries,
    }


def projects_json(
    found: list[tuple[AccHub, list[AccProject]]], config: PipelineConfig | None, builders: dict[str, list[str]]
) -> dict[str, Any]:
    mapped = {m.acc_project_id: m for m in config.projects} if config else {}
    return {
        "acc": [
            {
                "hub_id": hub.id,
                "hub_name": hub.name,
                "projects": [
                    {
                        "acc_project_id": p.id,
                        "name": p.name,
                        "mapped_to": (
                            f"{mapped[p.id].builder_id}/{mapped[p.id].buildpass_project_id}" if p.id in mapped else None
                        ),
                    }
                    for p in projects
                ],
            }
            for hub, projects in found
        ],
        "buildpass": {
            "builders": [{"builder_id": b, "mapped_projects": ps} for b, ps in builders.items()],
            "note": "no documented endpoint lists a builder's projects; the builders here come from the "
            "Variable's mappings and the connection's extra.builder_ids",
        },
    }
