"""Start-up mistakes: the real `liveupdates` command prints one line on stderr, exits non-zero,
and shows no traceback; nothing starts (issue 10, item 10)."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from liveupdates.settings import SettingsError, environment_names, load_settings
from liveupdates.startup import StartupError, listen_socket, unknown_environment
from tests.support.processes import Processes, clean_env, free_port, redis_env, run_command
from tests.support.waiting import until

GOOD_FEEDS = '[[feeds]]\nid = "gazette"\nurl = "https://gazette.example/feed.xml"\n'


def one_line_failure(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The process failed with exactly one line on stderr (containing every needle)."""
    lines = result.stderr.splitlines()
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert lines[0].startswith("liveupdates: ")
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.fixture
def feeds(tmp_path: Path) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(GOOD_FEEDS)
    return path


def embedded_env(tmp_path: Path, feeds: Path, **variables: str) -> dict[str, str]:
    return clean_env(
        LIVEUPDATES_DATA_DIR=str(tmp_path / "data"),
        LIVEUPDATES_FEEDS=str(feeds),
        LIVEUPDATES_HUB_DEMO="false",
        **variables,
    )


def dead_redis_env(tmp_path: Path, feeds: Path) -> dict[str, str]:
    # A port nothing listens on; a password, which must not be printed.
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    return redis_env(url, "lutest:dead:", tmp_path, feeds, LIVEUPDATES_HUB_DEMO="false")


@pytest.mark.parametrize("command", ["serve", "web"])
def test_a_busy_port_is_one_line(command: str, tmp_path: Path, feeds: Path, busy_port: int) -> None:
    result = run_command(embedded_env(tmp_path, feeds), command, "--port", str(busy_port))
    one_line_failure(result, f"127.0.0.1:{busy_port}", "already in use")


def test_a_busy_websocket_port_is_one_line(tmp_path: Path, feeds: Path, busy_port: int) -> None:
    env = embedded_env(tmp_path, feeds, LIVEUPDATES_HUB_WS_PORT=str(busy_port))
    result = run_command(env, "serve", "--port", str(free_port()))
    one_line_failure(result, f"127.0.0.1:{busy_port}", "hub.ws_port", "already in use")


def test_a_busy_metrics_port_is_one_line_for_a_worker(
    tmp_path: Path, feeds: Path, busy_port: int, redis_url: str, redis_prefix: str
) -> None:
    env = redis_env(
        redis_url, redis_prefix, tmp_path, feeds, LIVEUPDATES_METRICS_PORT=str(busy_port)
    )
    one_line_failure(run_command(env, "worker"), "metrics_port", str(busy_port))


@pytest.mark.parametrize("command", ["serve", "web", "worker", "push"])
def test_unreachable_redis_is_one_line_and_nothing_starts(
    command: str, tmp_path: Path, feeds: Path
) -> None:
    port = free_port()
    args = [command] if command in ("worker", "push") else [command, "--port", str(port)]
    result = run_command(dead_redis_env(tmp_path, feeds), *args)
    line = one_line_failure(result, "cannot reach Redis at redis://", "127.0.0.1")
    assert "hunter2-secret" not in line


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A loopback port that takes connections and never answers (a Redis that hangs)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def refused(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        return False


@pytest.mark.parametrize("command", ["serve", "web"])
async def test_a_failed_start_lets_go_of_its_port(
    command: str, tmp_path: Path, feeds: Path, silent_redis: int
) -> None:
    """The port is bound before Redis is asked: a client that connects while the service waits
    for Redis is disconnected when the start fails, and the port refuses connections after."""
    port = free_port()
    env = redis_env(f"redis://127.0.0.1:{silent_redis}/0", "lutest:silent:", tmp_path, feeds)
    (tmp_path / "logs").mkdir()
    procs = Processes(env, tmp_path / "logs")
    try:
        server = procs.start(command, command, "--port", str(port))
        # While it waits for Redis (REACHABLE_TIMEOUT, 5 s), the port takes the connection.
        client = await until(lambda: connected(port, server), 30, procs.tails)
        with client:
            client.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            client.settimeout(30)
            try:
                answer = client.recv(1024)
            except ConnectionResetError:
                answer = b""
            assert answer == b"", answer  # closed without an answer, not left hanging
        await until(lambda: server.poll() is not None, 30, procs.tails)
        assert server.returncode != 0
        assert refused(port), "the port still takes connections after the failed start"
        assert "cannot reach Redis" in procs.tails() and "no answer within" in procs.tails()
    finally:
        procs.stop_all()


def connected(port: int, server: subprocess.Popen[bytes]) -> socket.socket | None:
    """A connection to `port`, or None while nothing listens (the server must still run)."""
    assert server.poll() is None, "the server ended before it listened"
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        s.close()
        return None
    return s


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[feeds]\nid = 'x'\n", "not valid TOML"),
        ('[[feeds]]\nid = "gazette"\n', "url is required"),
    ],
    ids=["malformed", "invalid"],
)
def test_a_bad_feeds_file_is_one_line_for_serve(
    text: str, needle: str, tmp_path: Path, feeds: Path
) -> None:
    feeds.write_text(text)
    result = run_command(embedded_env(tmp_path, feeds), "serve", "--port", str(free_port()))
    one_line_failure(result, str(feeds), needle)


def test_a_bad_feeds_file_is_one_line_for_a_worker(
    tmp_path: Path, feeds: Path, redis_url: str, redis_prefix: str
) -> None:
    feeds.write_text('[[feeds]]\nid = "gazette"\nurl = "ftp://gazette.example/"\n')
    result = run_command(redis_env(redis_url, redis_prefix, tmp_path, feeds), "worker")
    one_line_failure(result, str(feeds), "gazette")


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("LIVEUPDATES_HUB_PORT", "eighty", "hub_port"),
        ("LIVEUPDATES_POLL_MIN_INTERVAL", "0", "poll_min_interval"),
        ("LIVEUPDATES_ADMIN_TOKEN", "abc123", "admin_token"),
        ("LIVEUPDATES_REDIS_URL", "http://redis.example", "redis_url"),
    ],
)
def test_a_bad_setting_is_one_line(
    variable: str, value: str, needle: str, tmp_path: Path, feeds: Path
) -> None:
    env = embedded_env(tmp_path, feeds, **{variable: value})
    line = one_line_failure(run_command(env, "serve", "--port", str(free_port())), needle)
    if variable == "LIVEUPDATES_ADMIN_TOKEN":
        assert value not in line  # a secret is never printed


def test_a_bad_settings_file_is_one_line(tmp_path: Path, feeds: Path) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("[fetch]\ntotal_timout = 3\n")
    env = embedded_env(tmp_path, feeds, LIVEUPDATES_CONFIG=str(config))
    one_line_failure(run_command(env, "worker"), str(config), "total_timout")


def test_an_unknown_variable_is_a_warning_naming_the_closest_setting(
    tmp_path: Path, feeds: Path, busy_port: int
) -> None:
    # The warning comes once logging is set up; the busy port then ends the run in one line.
    env = embedded_env(tmp_path, feeds, LIVEUPDATES_FETCH_TIMEOUT="3")
    result = run_command(env, "serve", "--port", str(busy_port))
    warning, error = result.stderr.splitlines()
    assert "WARNING" in warning
    assert "LIVEUPDATES_FETCH_TIMEOUT" in warning
    assert "did you mean LIVEUPDATES_FETCH_TOTAL_TIMEOUT?" in warning
    assert "already in use" in error
    assert result.returncode != 0


def test_every_variable_liveupdates_reads_is_known() -> None:
    names = environment_names()
    assert {
        "LIVEUPDATES_CONFIG",
        "LIVEUPDATES_URL",
        "LIVEUPDATES_FEEDS",
        "LIVEUPDATES_REDIS_URL",
        "LIVEUPDATES_ADMIN_TOKEN",
        "LIVEUPDATES_TEST_REDIS_URL",
        "LIVEUPDATES_FETCH_ALLOW_NETWORKS",
    } <= names
    assert unknown_environment({name: "x" for name in names}, names) == []
    # Each setting's variable is read by load_settings (a bad value there is an error).
    with pytest.raises(SettingsError, match="hub_port"):
        load_settings({"LIVEUPDATES_HUB_PORT": "x"})


def test_unknown_variables_and_their_closest_names() -> None:
    names = environment_names()
    env = {
        "LIVEUPDATES_REDIS_URI": "redis://",
        "LIVEUPDATES_ZZZZZZZZ": "1",
        "PATH": "/bin",
        "LIVEUPDATES_DATA_DIR": "/tmp",
    }
    assert unknown_environment(env, names) == [
        "environment variable LIVEUPDATES_REDIS_URI is not a liveupdates setting;"
        " did you mean LIVEUPDATES_REDIS_URL?",
        "environment variable LIVEUPDATES_ZZZZZZZZ is not a liveupdates setting",
    ]


def test_listen_socket_binds_and_says_in_one_line_when_it_cannot(busy_port: int) -> None:
    with pytest.raises(StartupError, match="already in use") as caught:
        listen_socket("127.0.0.1", busy_port)
    assert "\n" not in str(caught.value)
    sock = listen_socket("127.0.0.1", 0)
    try:
        with socket.create_connection(sock.getsockname(), timeout=5):
            pass  # accepted into the backlog: it listens
    finally:
        sock.close()


async def test_serve_with_a_typo_starts_warns_once_and_stops_quietly(
    tmp_path: Path, feeds: Path
) -> None:
    feeds.write_text(GOOD_FEEDS + "paused = true\n")  # nothing to fetch, nothing else to log
    port = free_port()
    env = embedded_env(tmp_path, feeds, LIVEUPDATES_POLL_MIN_INTERVALL="1")
    (tmp_path / "logs").mkdir()
    procs = Processes(env, tmp_path / "logs")

    def log() -> str:
        return "\n".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))

    try:
        server = procs.start("serve", "serve", "--port", str(port))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:

            async def healthy() -> bool:
                assert server.poll() is None, log()
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(healthy, 30, log)
        procs.stop("serve")
        # uvicorn ends by re-raising the SIGTERM it handled, as a process killed by it would.
        assert server.returncode in (0, -signal.SIGTERM), log()
    finally:
        procs.stop_all()
    text = log()
    warnings = [line for line in text.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, text
    assert "LIVEUPDATES_POLL_MIN_INTERVALL" in warnings[0]
    assert "did you mean LIVEUPDATES_POLL_MIN_INTERVAL?" in warnings[0]
    assert "seeded 1 feed(s)" in text
    assert "Traceback" not in text, text
