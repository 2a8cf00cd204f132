"""`liveupdates poll URL` as a user runs it: a real process against a feed on a loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import BRIDGE, bridge_story, rss


def poll(target: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LIVEUPDATES_DATA_DIR": str(data_dir),
        "LIVEUPDATES_FETCH_ALLOW_NETWORKS": ALLOW_LOOPBACK,
    }
    return subprocess.run(
        [sys.executable, "-m", "liveupdates.cli", "poll", target],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def events(result: subprocess.CompletedProcess[str]) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_poll_prints_created_then_exact_insert_then_nothing(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    url = feed_server.url("/gazette.xml")
    feed_server.set("/gazette.xml", rss([bridge_story()]))
    [created] = events(poll(url, tmp_path))
    assert created["kind"] == "created"
    assert created["story"]["title"] == "Saltmarsh Bridge reopens after eleven weeks"

    added = "The ferry's last crossing on Friday will be free of charge."
    feed_server.set("/gazette.xml", rss([bridge_story(paragraphs=[*BRIDGE, added])]))
    [updated] = events(poll(url, tmp_path))
    assert updated["kind"] == "updated"
    assert updated["diff"]["paragraphs"] == [
        {
            "op": "insert",
            "old_start": 4,
            "old_end": 4,
            "new_start": 4,
            "new_end": 5,
            "old": [],
            "new": [added],
        }
    ]

    feed_server.set(
        "/gazette.xml", rss([bridge_story(paragraphs=[*BRIDGE, added], extra_markup=True)])
    )
    assert events(poll(url, tmp_path)) == []


def test_poll_failure_exits_non_zero_with_a_clear_message(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/gone.xml", b"", status=500)
    result = poll(feed_server.url("/gone.xml"), tmp_path)
    assert result.returncode != 0
    assert "HTTP 500" in result.stderr
    assert result.stdout == ""

    result = poll("not-a-feed-or-url", tmp_path)
    assert result.returncode != 0
    assert "neither a known feed id nor an http(s) URL" in result.stderr
