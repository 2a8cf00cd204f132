"""The `liveupdates` command: serve, web, worker, push, poll (and, with the admin API, feeds)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from liveupdates import __version__
from liveupdates.logformat import configure_logging
from liveupdates.settings import Settings, SettingsError, environment_names, load_settings
from liveupdates.startup import StartupError, unknown_environment

if TYPE_CHECKING:
    from liveupdates.models import FeedConfig
    from liveupdates.store.base import Store


# What a shell reports for a command killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """Ends the command with one clear line on stderr and exit status 1."""


async def _target_feed(store: Store, settings: Settings, target: str, self_url: str) -> FeedConfig:
    """The feed `liveupdates poll TARGET` means: a configured feed with that id, else a
    configured feed with that URL (so its stories are updated, not copied into a second feed),
    else an ad-hoc feed for the URL. The store's feeds first, then the feeds file's."""
    from liveupdates.feeds.config import (
        FeedError,
        check_url,
        derived_feed_id,
        load_feeds,
        resolve_url,
    )
    from liveupdates.models import FeedConfig

    stored = await store.get_feed(target)
    if stored is not None:
        return stored
    try:
        url: str | None = check_url(target)
    except FeedError:
        url = None

    def same_url(feed: FeedConfig) -> bool:
        return url is not None and url in (feed.url, resolve_url(feed.url, self_url))

    if url is not None:
        for feed in await store.list_feeds():
            if same_url(feed):
                return feed
    # The feeds file only when the store does not know the feed (a service never started).
    if settings.feeds_path.exists():
        for feed in load_feeds(settings.feeds_path, settings):
            if feed.id == target or same_url(feed):
                return feed
    if url is None:
        raise CliError(f"{target!r} is neither a known feed id nor an http(s) URL")
    return FeedConfig(id=derived_feed_id(url), url=url)


async def _poll(settings: Settings, target: str) -> int:
    from liveupdates.backends import open_backends
    from liveupdates.runtime import self_url_from_env
    from workers.poller import FeedScheduler

    backends = open_backends(settings)
    try:
        self_url = self_url_from_env()
        feed = await _target_feed(backends.store, settings, target, self_url)
        # Through a scheduler and the feed's claim, like every poll: never alongside a worker's.
        scheduler = FeedScheduler.for_process(settings, backends, self_url=self_url)
        try:
            report = await scheduler.poll_feed(feed)
        finally:
            await scheduler.aclose()
        for event in report.events:
            print(json.dumps(event, ensure_ascii=False), flush=True)
        if report.outcome.status == "error":
            raise CliError(f"poll of {feed.url} failed: {report.outcome.error}")
        return 0
    finally:
        await backends.close()


async def _push(settings: Settings, args: argparse.Namespace) -> int:
    from liveupdates.push.process import run_push_process, send_test

    if args.action is not None and not args.device_id:
        raise CliError("push test needs a DEVICE_ID")
    if args.action is None:
        await run_push_process(settings)
        return 0
    result = await send_test(settings, args.device_id)
    if result.status != "sent":
        raise CliError(f"test notification not sent: {result.status} {result.detail}".strip())
    print(f"test notification sent to {args.device_id}")
    return 0


async def _worker(settings: Settings) -> int:
    from workers.main import run_worker

    await run_worker(settings)
    return 0


def _serve(settings: Settings, args: argparse.Namespace, *, with_poller: bool) -> int:
    from liveupdates.server import serve

    run_poller = None
    if with_poller:
        from workers.main import running_poller

        run_poller = running_poller
    serve(settings, host=args.host, port=args.port, run_poller=run_poller)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liveupdates", description="News feeds in, real-time story updates out."
    )
    parser.add_argument("--version", action="version", version=f"liveupdates {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, text in (
        ("serve", "run everything in one process: web app, poller, demo feed"),
        ("web", "run the web app alone (scale-out mode, with Redis)"),
    ):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=None, help="port (default 8000)")

    sub.add_parser("worker", help="run the scheduled poller for every enabled feed")

    p = sub.add_parser(
        "push",
        help="run the device-push dispatcher alone; `push test DEVICE_ID` sends a test notification",
    )
    p.add_argument("action", nargs="?", choices=["test"], help="test: send one test notification")
    p.add_argument("device_id", nargs="?", metavar="DEVICE_ID")

    p = sub.add_parser("poll", help="poll one feed once and print each event as a JSON line")
    p.add_argument("target", metavar="URL_OR_FEED_ID")

    try:
        from liveupdates.ops.cli import add_feeds_parser
    except ImportError:
        pass
    else:
        add_feeds_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status = _run(args)
        # Buffered output meets a reader that went away here, where it can still be handled.
        sys.stdout.flush()
        return status
    except (SettingsError, StartupError, CliError) as exc:
        print(f"liveupdates: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `liveupdates feeds list | head -1`: the reader has all it wanted. Stop quietly, as a
        # tool killed by SIGPIPE does, and keep the interpreter's final flush from failing too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace) -> int:
    if args.command == "feeds":
        # `feeds` talks to a server's admin API and reads no settings of its own.
        configure_logging("text", verbose=args.verbose)
        return int(args.run(args))
    settings = load_settings()
    configure_logging(settings.log_format, verbose=args.verbose)
    for warning in unknown_environment(os.environ, environment_names()):
        logging.getLogger("liveupdates").warning("%s", warning)
    if args.command == "poll":
        if not args.verbose:
            # The events on stdout and one error line are the command's whole output.
            logging.getLogger("liveupdates").setLevel(logging.CRITICAL)
        return asyncio.run(_poll(settings, args.target))
    if args.command == "worker":
        return asyncio.run(_worker(settings))
    if args.command == "push":
        return asyncio.run(_push(settings, args))
    return _serve(settings, args, with_poller=args.command == "serve")


if __name__ == "__main__":
    sys.exit(main())
