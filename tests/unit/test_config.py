from __future__ import annotations

from datetime import UTC, datetime

import pytest
from acc_buildpass.config import PipelineConfig, resolve_window
from acc_buildpass.errors import ConfigError

GOOD = {
    "staging_bucket": "photos-staging",
    "projects": [
        {
            "acc_project_id": "36c0838c-0360-4cfa-b2c6-85e0056ec7e8",
            "builder_id": "buil_x",
            "buildpass_project_id": "proj_y",
            "buildpass_folder_id": None,
        }
    ],
}


def test_defaults() -> None:
    config = PipelineConfig.from_variable(GOOD)
    assert config.staging_prefix == "acc-photos"
    assert config.media_types == ("NORMAL", "INFRARED", "PHOTOSPHERE")
    assert config.publish_mode == "bulk"
    assert config.projects[0].buildpass_folder_id is None


def test_a_media_type_acc_does_not_list_today_may_be_opted_in() -> None:
    config = PipelineConfig.from_variable({**GOOD, "media_types": ["NORMAL", "PANORAMA", "DRONE_ORTHO_2"]})
    assert config.media_types == ("NORMAL", "PANORAMA", "DRONE_ORTHO_2")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"staging_bucket": None}, "'staging_bucket' is missing"),
        ({"projects": []}, "'projects' must be a non-empty list"),
        ({"projects": [{"acc_project_id": "a1", "builder_id": "b"}]}, r"projects\[0\]: 'buildpass_project_id'"),
        ({"staging_prefix": "../up"}, "staging_prefix"),
        ({"media_types": ["VIDEO", "hologram"]}, "media_types"),
        ({"media_types": ["VIDEO", "A B"]}, "media_types"),
        ({"media_types": [7]}, "media_types"),
        ({"publish_mode": "fast"}, "publish_mode"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_configuration_says_what_to_fix(change: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PipelineConfig.from_variable({**GOOD, **change})


def test_window_from_conf_overrides_interval() -> None:
    window = resolve_window({"window_start": "2026-01-01T00:00:00", "window_end": "2026-01-02T00:00:00Z"}, None, None)
    assert window.start == datetime(2026, 1, 1, tzinfo=UTC)
    assert window.end == datetime(2026, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "conf",
    [
        {"window_start": "2026-01-02T00:00:00", "window_end": "2026-01-01T00:00:00"},
        {"window_start": "2026-01-01T00:00:00"},
        {"window_start": "soon", "window_end": "later"},
    ],
)
def test_invalid_window_is_one_clear_line(conf: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="window"):
        resolve_window(conf, None, None)
