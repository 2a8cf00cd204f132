"""Real liveupdates processes for end-to-end tests, run as the Procfile runs them.

`Processes` starts `python -m liveupdates.cli <args>` subprocesses configured only through the
environment it is given, one log file per process start, and stops every one at teardown.
`free_port()` picks a free loopback TCP port for a process to listen on.

    procs = Processes(env, tmp_path / "logs")
    procs.start("web-a", "web", "--port", str(free_port()))
    procs.stop("web-a", signal.SIGKILL)
"""

from __future__ import annotations

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
