"""A batch: the unit of mapped work (one task instance stages or publishes one batch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from acc_buildpass.config import ProjectMapping
from acc_buildpass.records import Window


@dataclass(frozen=True)
class Batch:
    index: int
    label: str
    window_start: str
    window_end: str
    acc_project_id: str
    builder_id: str
    buildpass_project_id: str
    folder_id: str | None
    parts: tuple[str, ...]
    count: int

    @property
    def window(self) -> Window:
        return Window(datetime.fromisoformat(self.window_start), datetime.fromisoformat(self.window_end))

    @property
    def mapping(self) -> ProjectMapping:
        return ProjectMapping(self.acc_project_id, self.builder_id, self.buildpass_project_id, self.folder_id)

    @classmethod
    def of(
        cls,
        mapping: ProjectMapping,
        window: Window,
        *,
        index: int,
        label: str,
        folder_id: str | None,
        parts: tuple[str, ...],
        count: int,
    ) -> Batch:
        """A batch of one project mapping's photos in a window."""
        return cls(
            index=index,
            label=label,
            window_start=window.start.isoformat(),
            window_end=window.end.isoformat(),
            acc_project_id=mapping.acc_project_id,
            builder_id=mapping.builder_id,
            buildpass_project_id=mapping.buildpass_project_id,
            folder_id=folder_id,
            parts=parts,
            count=count,
        )

    def to_xcom(self) -> dict[str, Any]:
        data = asdict(self)
        data["parts"] = list(self.parts)
        return data

    @classmethod
    def from_xcom(cls, raw: dict[str, Any]) -> Batch:
        return cls(**{**raw, "parts": tuple(raw["parts"])})


@dataclass(frozen=True)
class Outcome:
    """What happened to one photo in one step.

    status: staged | present (already in BuildPass) | created | skipped | failed
    """

    photo_id: str
    status: str
    reason: str = ""
    size: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    reused: bool = False

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Outcome:
        return cls(**raw)


def plan(parts: dict[ProjectMapping, list[tuple[str, int]]], window: Window, max_batches: int) -> list[Batch]:
    """Group manifest parts into at most about ``max_batches`` batches, never across projects."""
    total = sum(len(p) for p in parts.values())
    per_batch = max(1, -(-total // max_batches))
    batches: list[Batch] = []
    for mapping, project_parts in parts.items():
        groups = [project_parts[i : i + per_batch] for i in range(0, len(project_parts), per_batch)]
        for n, group in enumerate(groups, start=1):
            batches.append(
                Batch.of(
                    mapping,
                    window,
                    index=len(batches),
                    label=f"{mapping.label} {n}/{len(groups)}",
                    folder_id=mapping.buildpass_folder_id,
                    parts=tuple(key for key, _ in group),
                    count=sum(count for _, count in group),
                )
            )
    return batches
