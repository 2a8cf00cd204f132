"""`liveupdates poll URL` as a user runs it: a real process against a feed on a loopback server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from liveupdates.feeds.config import derived_feed_id
from liveupdates.models import FeedConfig
from liveupdates.store.sqlite import SQLiteStore
from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.stories import BRIDGE, bridge_story, rss


def poll(target: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `liveupdates poll TARGET`; `env` adds LIVEUPDATES_* variables (the loopback feed server
    is allowed unless LIVEUPDATES_FETCH_ALLOW_NETWORKS says otherwise)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    environ.update(
        LIVEUPDATES_DATA_DIR=str(data_dir),
        LIVEUPDATES_FETCH_ALLOW_NETWORKS=ALLOW_LOOPBACK,
        LIVEUPDATES_FEEDS=str(data_dir / "no-feeds.toml"),
    )
    environ.update(env)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "no-feeds.toml").touch()
    return subprocess.run(
        [sys.executable, "-m", "liveupdates.cli", "poll", target],
        capture_output=True,
        text=True,
        env=environ,
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


def test_poll_refuses_a_loopback_feed_unless_the_setting_allows_it(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    url = feed_server.url("/gazette.xml")
    feed_server.set("/gazette.xml", rss([bridge_story()]))
    result = poll(url, tmp_path, LIVEUPDATES_FETCH_ALLOW_NETWORKS="")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (
        f"liveupdates: poll of {url} failed: "
        "address 127.0.0.1 is loopback; see fetch.allow_networks\n"
    )
    assert feed_server.count("/gazette.xml") == 0
    [created] = events(poll(url, tmp_path, LIVEUPDATES_FETCH_ALLOW_NETWORKS="127.0.0.0/8"))
    assert created["kind"] == "created"

    result = poll(url, tmp_path, LIVEUPDATES_FETCH_ALLOW_NETWORKS="127.0.0.0/33")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "'127.0.0.0/33'" in result.stderr


async def test_poll_url_of_a_configured_feed_polls_that_feed(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """Not a second, ad-hoc copy of the feed whose stories would go stale beside the live ones."""
    url = feed_server.url("/gazette.xml")
    feed_server.set("/gazette.xml", rss([bridge_story()]))
    store = SQLiteStore(tmp_path / "liveupdates.sqlite3")
    await store.upsert_feed(FeedConfig(id="gazette", url=url))
    await store.close()

    [created] = events(poll("gazette", tmp_path))
    assert created["kind"] == "created" and created["story"]["feed"] == "gazette"
    added = "The ferry's last crossing on Friday will be free of charge."
    feed_server.set("/gazette.xml", rss([bridge_story(paragraphs=[*BRIDGE, added])]))
    [updated] = events(poll(url, tmp_path))
    assert updated["kind"] == "updated"
    assert updated["story"]["id"] == created["story"]["id"]
    assert updated["story"]["feed"] == "gazette"
    assert updated["story"]["version"] == 2

    store = SQLiteStore(tmp_path / "liveupdates.sqlite3")
    try:
        assert [f.id for f in await store.list_feeds()] == ["gazette"]
        assert await store.feed_health(derived_feed_id(url)) is None
        health = await store.feed_health("gazette")
        assert health is not None and health.stories == 1
    finally:
        await store.close()


def test_poll_url_of_a_feed_in_the_feeds_file_uses_its_id(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    url = feed_server.url("/harbour.xml")
    feed_server.set("/harbour.xml", rss([bridge_story()]))
    feeds_file = tmp_path / "feeds.toml"
    feeds_file.write_text(f'[[feeds]]\nid = "harbour"\nurl = "{url}"\n')
    [created] = events(poll(url, tmp_path / "data", LIVEUPDATES_FEEDS=str(feeds_file)))
    assert created["story"]["feed"] == "harbour"


def test_poll_into_a_pipe_whose_reader_has_gone_ends_quietly(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    feed_server.set("/gazette.xml", rss([bridge_story(), bridge_story(guid="second-story")]))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    environ.update(
        LIVEUPDATES_DATA_DIR=str(tmp_path),
        LIVEUPDATES_FETCH_ALLOW_NETWORKS=ALLOW_LOOPBACK,
        LIVEUPDATES_FEEDS=str(tmp_path / "no-feeds.toml"),
    )
    read, write = os.pipe()
    os.close(read)  # `liveupdates poll URL | head -0`
    try:
        done = subprocess.run(
            [sys.executable, "-m", "liveupdates.cli", "poll", feed_server.url("/gazette.xml")],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
