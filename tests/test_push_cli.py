"""`liveupdates push test DEVICE_ID` and `liveupdates push` start-up mistakes: one line, exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.processes import ROOT, clean_env


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = clean_env(LIVEUPDATES_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "-m", "liveupdates.cli", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_push_test_of_an_unknown_device_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = run(tmp_path, "push", "test", "no-such-device")
    assert done.returncode == 1
    assert done.stderr.startswith("liveupdates: ")
    assert "no-such-device" in done.stderr  # says which device, not some other start-up failure
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_push_test_needs_a_device_id(tmp_path: Path) -> None:
    done = run(tmp_path, "push", "test")
    assert (done.returncode, done.stderr.strip()) == (1, "liveupdates: push test needs a DEVICE_ID")


def test_bad_push_settings_stop_the_start_with_one_line(tmp_path: Path) -> None:
    done = run(tmp_path, "push", LIVEUPDATES_PUSH_MIN_GAP="-1")
    assert done.returncode == 1
    assert done.stderr.strip() == "liveupdates: setting push_min_gap must be >= 0 (0 turns it off)"
    done = run(tmp_path, "push", LIVEUPDATES_PUSH_VAPID_SUBJECT="ops@example.org")
    assert done.returncode == 1
    assert "push_vapid_subject" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_apns_half_configured_is_a_start_up_mistake(tmp_path: Path) -> None:
    done = run(tmp_path, "push", LIVEUPDATES_PUSH_APNS_KEY_ID="ABC123")
    assert done.returncode == 1
    assert "set all four or none" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
