"""The `liveupdates` command: serve, web, worker, poll (and, with the admin API, feeds)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from liveupdates import __version__
from liveupdates.settings import Settings, SettingsError, load_settings


class CliError(Exception):
    """Ends the command with one clear line on stderr and exit status 1."""


async def _poll(settings: Settings, target: str) -> int:
    from liveupdates.backends import open_backends
    from liveupdates.feeds.config import FeedError, adhoc_feed_id, check_url, load_feeds
    from liveupdates.models import FeedConfig
    from liveupdates.runtime import self_url_from_env
    from workers.poller import FeedScheduler

    backends = open_backends(settings)
    try:
        feed = await backends.store.get_feed(target)
        if feed is None and settings.feeds_path.exists():
            feed = next(
                (f for f in load_feeds(settings.feeds_path, settings) if f.id == target), None
            )
        if feed is None:
            try:
                url = check_url(target)
            except FeedError:
                raise CliError(
                    f"{target!r} is neither a known feed id nor an http(s) URL"
                ) from None
            feed = FeedConfig(id=adhoc_feed_id(url), url=url)
        # Through a scheduler and the feed's claim, like every poll: never alongside a worker's.
        scheduler = FeedScheduler.for_process(settings, backends, self_url=self_url_from_env())
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
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # One line per poll and per request drowns what matters; -v brings them back.
        for noisy in ("apscheduler", "httpx", "websockets.server"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        if args.command == "feeds":
            return args.run(args)
        settings = load_settings()
        if args.command == "poll":
            return asyncio.run(_poll(settings, args.target))
        if args.command == "worker":
            return asyncio.run(_worker(settings))
        return _serve(settings, args, with_poller=args.command == "serve")
    except (SettingsError, CliError) as exc:
        print(f"liveupdates: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
