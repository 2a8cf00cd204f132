"""Processes of a benchmark: the orchestrator drives children over JSON lines on stdin/stdout.

A child reads one command per line and answers with one JSON line. It exits when told to, when its
stdin closes (the orchestrator died), or after its own `--max-seconds`, so nothing outlives a run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / "bench" / "results" / "logs"

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


# -- child side ----------------------------------------------------------------------------------


def reply_stream() -> IO[str]:
    """The real stdout, for answers only; anything else printed goes to stderr (the log)."""
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(fd, "w", buffering=1)


async def command_loop(
    out: IO[str], handlers: dict[str, Handler], *, max_seconds: float, hello: dict[str, Any]
) -> None:
    """Answer commands until `exit`, EOF on stdin, or `max_seconds` (then the process dies)."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()
    # A hard stop: a benchmark child never lives longer than this, whatever happens.
    loop.call_later(max_seconds, os._exit, 3)
    out.write(json.dumps({"ready": True, "pid": os.getpid(), **hello}) + "\n")
    while True:
        line = await lines.get()
        if line is None:
            return
        message = json.loads(line)
        command = message.pop("cmd")
        if command == "exit":
            out.write(json.dumps({"ok": True}) + "\n")
            return
        try:
            answer = await handlers[command](message)
        except Exception as exc:  # reported to the orchestrator, which fails the benchmark
            import traceback

            traceback.print_exc()
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")


class CommandChild(Protocol):
    """What a load child serves: its commands, and what to let go of when it ends, however."""

    def commands(self) -> dict[str, Handler]: ...

    async def stop(self) -> None: ...


def child_main(make: Callable[[], CommandChild], *, max_seconds: float) -> None:
    """A load child's whole `main`: `--max-seconds` (default `max_seconds`), the reply stream,
    `make()` (in the event loop: it may open connections), its commands, then its `stop`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-seconds", type=float, default=max_seconds)
    asyncio.run(_serve(make, parser.parse_args().max_seconds))


async def _serve(make: Callable[[], CommandChild], max_seconds: float) -> None:
    out = reply_stream()
    child = make()
    try:
        await command_loop(out, child.commands(), max_seconds=max_seconds, hello={})
    finally:
        await child.stop()


# -- orchestrator side ---------------------------------------------------------------------------


class ChildError(RuntimeError):
    pass


class Child:
    """A benchmark child process (`python -m <module> args...`) answering JSON commands."""

    def __init__(self, name: str, module: str, *args: str, ready_timeout: float = 60.0) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.hello = self._next(ready_timeout)
        self.pid: int = self.hello["pid"]

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise ChildError(f"{self.name}: no answer within {timeout:.0f} s") from None
        if line is None:
            raise ChildError(f"{self.name} exited (code {self.proc.wait()}); see {self.log_path}")
        answer = json.loads(line)
        if "error" in answer:
            raise ChildError(f"{self.name}: {answer['error']} (see {self.log_path})")
        return answer

    def send(self, cmd: str, **args: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        return self._next(timeout)

    def call(self, cmd: str, timeout: float = 120.0, **args: Any) -> dict[str, Any]:
        self.send(cmd, **args)
        return self.result(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ChildError, OSError, ValueError):
                self.call("exit", timeout=10)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # our own child, by its handle
                self.proc.wait(timeout=10)
        self._log.close()


def call_all(children: list[Child], cmd: str, timeout: float = 120.0, **args: Any) -> list[dict]:
    """Send `cmd` to every child at once, then collect every answer."""
    for child in children:
        child.send(cmd, **args)
    deadline = time.monotonic() + timeout
    return [c.result(max(1.0, deadline - time.monotonic())) for c in children]
