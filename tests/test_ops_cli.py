"""`liveupdates feeds ...` as a real process against a real running service."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from liveupdates.ops.cli import feeds_table, parse_duration, relative
from tests.support.adminservice import AdminService
from tests.support.feedserver import FeedServer
from tests.support.stories import bridge_story, rss
from tests.support.waiting import until_sync

TOKEN = "cli-test-token-0123"
REPO = Path(__file__).resolve().parent.parent


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AdminService]:
    with AdminService(tmp_path / "lu.sqlite3", admin_token=TOKEN) as svc:
        yield svc


def feeds(
    service_url: str, *args: str, token: str | None = TOKEN, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    env["LIVEUPDATES_URL"] = service_url
    if token is not None:
        env["LIVEUPDATES_ADMIN_TOKEN"] = token
    done = subprocess.run(
        [sys.executable, "-m", "liveupdates.cli", "feeds", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def listed(service_url: str) -> dict[str, dict[str, Any]]:
    out = feeds(service_url, "list", "--json").stdout
    return {f["id"]: f for f in json.loads(out)["feeds"]}


def test_set_every_moves_the_next_poll_within_a_second(
    service: AdminService, feed_server: FeedServer
) -> None:
    feed_server.set("/hot.xml", rss([bridge_story()]))
    url = service.base_url
    out = feeds(url, "add", feed_server.url("/hot.xml"), "--id", "hot", "--every", "1h").stdout
    assert "added hot" in out

    # Wait for the first poll; after it the next one is planned far away (hour-scale interval).
    def polled() -> dict[str, Any] | None:
        health = listed(url)["hot"]["health"]
        return health if health["last_result"] == "ok" and health["next_poll_at"] else None

    health = until_sync(polled, 10, lambda: listed(url)["hot"]["health"], interval=0.1)
    assert ts(health["next_poll_at"]) > time.time() + 600

    started = time.time()
    out = feeds(url, "set", "hot", "--every", "10s").stdout
    assert "hot: every 10s" in out
    # Within a second; the CLI's own process start-up is not the service's doing: allow it on top.
    until_sync(
        lambda: ts(listed(url)["hot"]["health"]["next_poll_at"]) <= time.time() + 10.5,
        timeout=started + 1.0 + 2.0 - time.time(),
        message="next poll time did not move",
        interval=0.05,
    )

    table = feeds(url, "list").stdout
    row = next(line for line in table.splitlines() if line.startswith("hot "))
    assert " 10s " in row and " in " in row and " ok " in row
    assert table.splitlines()[0].split()[:3] == ["ID", "STATUS", "EVERY"]

    assert "hot: paused" in feeds(url, "pause", "hot").stdout
    assert listed(url)["hot"]["health"]["next_poll_at"] is None
    assert "hot: resumed" in feeds(url, "resume", "hot").stdout
    out = feeds(url, "poll", "hot").stdout
    assert out.startswith("hot: ") and "entries" in out
    detail = feeds(url, "show", "hot").stdout
    assert "interval:" in detail and "10s (adaptive)" in detail
    audit = feeds(url, "audit").stdout
    assert "feed.update" in audit and "admin" in audit
    assert "removed hot" in feeds(url, "remove", "hot").stdout
    assert listed(url) == {}


def test_refusals_are_one_clear_line(service: AdminService, tmp_path: Path) -> None:
    url = service.base_url
    done = feeds(url, "list", token="not-the-token", check=False)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "liveupdates feeds: admin token refused (check LIVEUPDATES_ADMIN_TOKEN or --token)"
    )
    done = feeds(url, "list", token=None, check=False)
    assert done.returncode == 1 and "no admin token" in done.stderr

    done = feeds(url, "add", "ftp://x.example/rss", check=False)
    assert done.returncode == 1 and "http or https" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1

    done = feeds(url, "add", "http://10.0.0.1/rss", check=False)
    assert (done.returncode, done.stderr) == (
        1,
        "liveupdates feeds: address 10.0.0.1 is private; see fetch.allow_networks\n",
    )

    done = feeds(url, "set", "nope", "--every", "10s", check=False)
    assert done.returncode == 1 and "no feed with id 'nope'" in done.stderr

    done = feeds(url, "set", "nope", "--every", "soon", check=False)
    assert done.returncode == 2 and "not a duration" in done.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    done = feeds(f"http://127.0.0.1:{free}", "list", check=False)
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"liveupdates feeds: cannot reach liveupdates at http://127.0.0.1:{free}"
    )

    # --url and --token on the command line win over the environment.
    done = feeds("http://127.0.0.1:1", "list", "--url", url, "--token", TOKEN, token="wrong")
    assert done.stdout.strip() == "no feeds"

    # A service without a token configured says how to set one.
    with AdminService(tmp_path / "other.sqlite3") as closed:
        done = feeds(closed.base_url, "list", check=False)
    assert done.returncode == 1 and "LIVEUPDATES_ADMIN_TOKEN" in done.stderr


@pytest.mark.parametrize("args", [("audit",), ("list",), ("list", "--json"), ("show", "hot")])
def test_a_reader_that_goes_away_ends_the_command_quietly(
    service: AdminService, feed_server: FeedServer, args: tuple[str, ...]
) -> None:
    """`liveupdates feeds audit | head -1`: no BrokenPipeError traceback once `head` has gone."""
    feed_server.set("/hot.xml", rss([bridge_story()]))
    feeds(service.base_url, "add", feed_server.url("/hot.xml"), "--id", "hot", "--paused")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    env.update(LIVEUPDATES_URL=service.base_url, LIVEUPDATES_ADMIN_TOKEN=TOKEN)
    read, write = os.pipe()
    # The reader is gone before the command writes a byte: what `head` leaves behind, without
    # depending on how quickly `head` exits.
    os.close(read)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "liveupdates.cli", "feeds", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 141  # as a shell reports a command ended by SIGPIPE


def test_head_in_a_real_shell_pipeline_gets_its_line_and_no_traceback(
    service: AdminService, feed_server: FeedServer
) -> None:
    feed_server.set("/hot.xml", rss([bridge_story()]))
    feeds(service.base_url, "add", feed_server.url("/hot.xml"), "--id", "hot", "--paused")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    env.update(LIVEUPDATES_URL=service.base_url, LIVEUPDATES_ADMIN_TOKEN=TOKEN)
    command = f"{sys.executable} -m liveupdates.cli feeds audit | head -1"
    done = subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.split() == ["AT", "WHO", "ACTION", "FEED", "CHANGE"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10),
        ("5m", 300),
        ("1h", 3600),
        ("90", 90),
        ("1.5h", 5400),
        ("2d", 172800),
        (" 30S ", 30),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "10 x", "-5s", "1h30m", "ten"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_relative_and_table() -> None:
    now = datetime(2031, 2, 3, 8, 0, 0, tzinfo=UTC)
    iso = lambda d: (now + d).isoformat().replace("+00:00", "Z")  # noqa: E731
    assert relative(iso(timedelta(seconds=9.6)), now) == "in 10s"
    assert relative(iso(timedelta(minutes=-5)), now) == "5m ago"
    assert relative(None, now) == "-"
    health = {
        "status": "failing",
        "next_poll_at": iso(timedelta(seconds=30)),
        "last_poll_at": iso(timedelta(seconds=-2)),
        "last_result": "error",
        "consecutive_errors": 3,
        "last_error": "HTTP 500",
        "stories": 0,
        "websub": {"state": "active", "pushes": 3, "bad_signatures": 1},
    }
    text = feeds_table(
        [
            {
                "id": "x",
                "url": "https://x",
                "interval_seconds": 60,
                "adaptive": True,
                "health": health,
            }
        ],
        now,
    )
    _header, row = text.splitlines()
    assert row.split() == [
        "x",
        "FAILING",
        "1m",
        "in",
        "30s",
        "2s",
        "ago",
        "error",
        "3",
        "0",
        "active",
        "3/1",
        "HTTP",
        "500",
    ]
    assert feeds_table([], now) == "no feeds"
