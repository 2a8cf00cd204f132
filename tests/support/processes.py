"""Real liveupdates processes for end-to-end tests, run as the Procfile runs them.

`Processes` starts `python -m liveupdates.cli <args>` subprocesses configured only through the
environment it is given, one log file per process start, and stops every one at teardown.
`free_port()` picks a free loopback TCP port for a process to listen on. `clean_env()` and
`redis_env()` build a process's environment; `run_command()` runs a command that should end by
itself (a start-up mistake) and returns what it printed.

    procs = Processes(env, tmp_path / "logs")
    procs.start("web-a", "web", "--port", str(free_port()))
    procs.stop("web-a", signal.SIGKILL)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# How long a stopped process may take to exit before it is killed.
STOP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**variables: str) -> dict[str, str]:
    """This environment without any LIVEUPDATES_* variable (the developer's own must not leak
    into a test's process), plus `variables`, with unbuffered output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIVEUPDATES_")}
    env.update(PYTHONUNBUFFERED="1", **variables)
    return env


def redis_env(
    redis_url: str, redis_prefix: str, tmp_path: Path, feeds: Path, **variables: str
) -> dict[str, str]:
    """The environment of a scale-out (Redis mode) process: its Redis and key prefix, a data
    directory under `tmp_path`, the feeds file `feeds`, then `variables` (LIVEUPDATES_... names)."""
    return clean_env(
        LIVEUPDATES_REDIS_URL=redis_url,
        LIVEUPDATES_REDIS_PREFIX=redis_prefix,
        LIVEUPDATES_DATA_DIR=str(tmp_path / "data"),
        LIVEUPDATES_FEEDS=str(feeds),
        **variables,
    )


def run_command(
    env: dict[str, str], *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `liveupdates <args>` to its end; stdout and stderr apart, as text."""
    return subprocess.run(
        [sys.executable, "-m", "liveupdates.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Processes:
    """Starts liveupdates processes; every one is stopped at teardown, whatever happened."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._count = 0

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start `liveupdates <args>` as `name` (a name stopped earlier may be started again)."""
        self._count += 1
        out = (self.logs / f"{self._count:02d}-{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "liveupdates.cli", *args],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        self.procs[name] = proc
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def tails(self, lines: int = 15) -> str:
        """The last lines of every process's log, to print when a test failed."""
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(parts)
