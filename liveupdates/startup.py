"""What a process checks before it starts serving or polling, so a start-up mistake is one line.

A busy port, a bad feeds file, an unreachable Redis: each is a `StartupError` whose message is
the whole report (`liveupdates: <message>` on stderr, exit status 1), raised before anything
starts. The listening sockets are bound here, before the backends are opened and before uvicorn
starts, so a busy port is caught first and no half-started server has to be torn down.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import errno
import signal
import socket
from collections.abc import Iterable, Mapping

from liveupdates.settings import ENV_PREFIX


class StartupError(Exception):
    """A process cannot start; the message is the one line that says why."""


def listen_socket(
    host: str, port: int, *, what: str = "the web app", reuse_port: bool = False
) -> socket.socket:
    """A TCP socket bound to host:port and listening, ready to hand to the server. With
    `reuse_port`, other processes may bind the same port (SO_REUSEPORT: several `web` processes
    on one machine share it, the kernel spreads the connections).

    StartupError (one line) when the address is in use, not ours, or not resolvable."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise StartupError(f"cannot listen on {host}:{port} for {what}: {exc}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # As uvicorn does: a restart may reuse the port while old connections linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(4096)
        sock.set_inheritable(True)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            why = "the address is already in use (another liveupdates, or another server?)"
        else:
            why = exc.strerror or str(exc)
        raise StartupError(f"cannot listen on {host}:{port} for {what}: {why}") from None
    return sock


def unknown_environment(environ: Mapping[str, str], known: Iterable[str]) -> list[str]:
    """One warning per `LIVEUPDATES_*` variable nobody reads, naming the closest known one."""
    names = sorted(set(known))
    warnings = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in names:
            continue
        # Compared without the prefix, which every name shares.
        suffixes = [known_name.removeprefix(ENV_PREFIX) for known_name in names]
        close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), suffixes, n=1)
        hint = f"; did you mean {ENV_PREFIX}{close[0]}?" if close else ""
        warnings.append(f"environment variable {name} is not a liveupdates setting{hint}")
    return warnings


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: what a process without a server (worker, push) waits
    on until it is told to stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop
