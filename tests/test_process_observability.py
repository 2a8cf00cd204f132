"""What ops see of a running `liveupdates worker`: Prometheus metrics on its own port, and logs
as human-readable lines or, with LIVEUPDATES_LOG_FORMAT=json, one JSON object per line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.feedserver import ALLOW_LOOPBACK, FeedServer
from tests.support.processes import ROOT, Processes, free_port, redis_env
from tests.support.stories import bridge_story, rss
from tests.support.waiting import until_sync

DEADLINE = 30.0


@pytest.fixture
def worker_env(
    tmp_path: Path, redis_url: str, redis_prefix: str, feed_server: FeedServer
) -> dict[str, str]:
    """A worker's environment on Redis with two feeds: one that works, one that fails."""
    feed_server.set("/gazette.xml", rss([bridge_story()]))
    feed_server.set("/broken.xml", b"", status=500)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(
        '[[feeds]]\nid = "gazette"\n'
        f'url = "{feed_server.url("/gazette.xml")}"\ninterval_seconds = 1\nadaptive = false\n'
        '[[feeds]]\nid = "broken"\n'
        f'url = "{feed_server.url("/broken.xml")}"\ninterval_seconds = 1\nadaptive = false\n'
    )
    return redis_env(
        redis_url,
        redis_prefix,
        tmp_path,
        feeds,
        LIVEUPDATES_FETCH_ALLOW_NETWORKS=ALLOW_LOOPBACK,
        LIVEUPDATES_POLL_MIN_INTERVAL="0.5",
        LIVEUPDATES_FETCH_TOTAL_TIMEOUT="2",
    )


@pytest.fixture
def processes(tmp_path: Path, worker_env: dict[str, str]) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(worker_env, logs)
    try:
        yield procs
    finally:
        procs.stop_all()
        print(procs.tails())  # shown by pytest when the test failed


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _log_lines(processes: Processes) -> list[str]:
    return [
        line
        for path in sorted(processes.logs.glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
    ]


def test_worker_exports_metrics_on_its_own_port(
    processes: Processes, worker_env: dict[str, str]
) -> None:
    port = free_port()
    worker_env["LIVEUPDATES_METRICS_PORT"] = str(port)
    processes.start("worker", "worker")

    def scraped() -> dict[Any, float] | None:
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        except httpx.HTTPError:
            return None
        samples = _samples(response.text)
        polled = samples.get(("liveupdates_polls_total", (("result", "ok"),)), 0)
        failed = samples.get(("liveupdates_polls_total", (("result", "error"),)), 0)
        return samples if polled >= 1 and failed >= 1 else None

    samples = until_sync(scraped, DEADLINE, lambda: processes.tails(), 0.2)
    assert samples[("liveupdates_updates_published_total", ())] >= 1
    assert ("liveupdates_poll_duration_seconds_count", ()) in samples
    # The default log format stays human-readable.
    lines = _log_lines(processes)
    assert any("INFO liveupdates.worker: worker polling" in line for line in lines), lines
    assert not any(line.startswith("{") for line in lines), lines


def test_worker_logs_one_json_object_per_line_with_its_feed_and_story(
    processes: Processes, worker_env: dict[str, str]
) -> None:
    worker_env["LIVEUPDATES_LOG_FORMAT"] = "json"
    processes.start("worker", "worker")

    def records() -> list[dict[str, Any]] | None:
        parsed = [json.loads(line) for line in _log_lines(processes) if line.strip()]
        stored = [r for r in parsed if r.get("story") and r.get("feed") == "gazette"]
        failed = [r for r in parsed if r.get("feed") == "broken" and r["level"] == "warning"]
        return parsed if stored and failed else None

    parsed = until_sync(records, DEADLINE, lambda: processes.tails(), 0.2)
    for record in parsed:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
    stored = next(r for r in parsed if r.get("story"))
    assert stored["logger"] == "liveupdates.ingest"
    assert "version 1" in stored["message"]


def test_a_metrics_port_in_use_is_one_line_and_a_failed_start(
    worker_env: dict[str, str],
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        worker_env["LIVEUPDATES_METRICS_PORT"] = str(taken.getsockname()[1])
        done = subprocess.run(
            [sys.executable, "-m", "liveupdates.cli", "worker"],
            cwd=ROOT,
            env=worker_env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "metrics_port" in done.stderr and "Traceback" not in done.stderr


def test_a_bad_log_format_is_refused_at_start(worker_env: dict[str, str]) -> None:
    worker_env["LIVEUPDATES_LOG_FORMAT"] = "xml"
    done = subprocess.run(
        [sys.executable, "-m", "liveupdates.cli", "worker"],
        cwd=ROOT,
        env=worker_env,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == 'liveupdates: setting log_format must be "text" or "json"'
