"""The settings of metrics and logs: names, defaults, and a clear refusal of bad values."""

from __future__ import annotations

import pytest

from liveupdates.settings import SettingsError, load_settings


def test_defaults_keep_metrics_off_and_logs_readable() -> None:
    settings = load_settings({})
    assert (settings.metrics_port, settings.log_format) == (0, "text")


def test_environment_names() -> None:
    settings = load_settings({"LIVEUPDATES_METRICS_PORT": "9101", "LIVEUPDATES_LOG_FORMAT": "json"})
    assert (settings.metrics_port, settings.log_format) == (9101, "json")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("LIVEUPDATES_METRICS_PORT", "70000", "metrics_port must be between 0 (off) and 65535"),
        ("LIVEUPDATES_METRICS_PORT", "-1", "metrics_port must be between 0 (off) and 65535"),
        ("LIVEUPDATES_METRICS_PORT", "nine", "metrics_port has a bad value"),
        ("LIVEUPDATES_LOG_FORMAT", "xml", 'log_format must be "text" or "json"'),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings({name: value})
