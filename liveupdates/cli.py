"""The `liveupdates` command: serve, web, worker, poll (and, with the admin API, feeds)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from liveupdates import __version__
from liveupdates.logformat import configure_logging
from liveupdates.settings import Settings, SettingsError, load_settings


class CliError(Exception):
    """Ends the command with one clear line on stderr and exit status 1."""


def adhoc_feed_id(url: str) -> str:
    """A stable feed id for a URL polled without being configured."""
    host = (urlsplit(url).hostname or "feed").replace(".", "-")[:40]
    return f"{host}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


async def _poll(settings: Settings, target: str) -> int:
    from liveupdates.feeds.config import FeedError, check_url, load_feeds
    from liveupdates.ingest import Ingestor
    from liveupdates.models import FeedConfig
    from liveupdates.runtime import make_fetcher, open_store, self_url_from_env

    backends = await open_store(settings)
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
        fetcher = make_fetcher(settings)
        try:
            ingestor = Ingestor(
                backends.store,
                fetcher,
                flipflop_window=settings.poll_flipflop_window,
                self_url=self_url_from_env(),
            )
            report = await ingestor.poll(feed)
        finally:
            await fetcher.aclose()
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

    serve(settings, host=args.host, port=args.port, with_poller=with_poller)
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
    try:
        # `feeds` talks to a server's admin API and reads no settings of its own.
        settings = None if args.command == "feeds" else load_settings()
    except SettingsError as exc:
        print(f"liveupdates: {exc}", file=sys.stderr)
        return 1
    configure_logging(settings.log_format if settings else "text", verbose=args.verbose)
    try:
        if settings is None:
            return args.run(args)
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
