"""`liveupdates feeds ...`: the admin API from the shell.

Talks to the running service over HTTP (`--url`, else $LIVEUPDATES_URL, else
http://127.0.0.1:8000) with the token from `--token` or $LIVEUPDATES_ADMIN_TOKEN. Prints a table
(or the API's JSON with `--json`); a failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT = 30.0  # a poll-now may wait for a slow feed (the fetch deadline is 20 s)

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


class FeedsCliError(Exception):
    """One line for stderr."""


def parse_duration(text: str) -> float:
    """'10s', '5m', '1h', '1.5h', '90' (seconds) -> seconds."""
    found = _DURATION_RE.match(text)
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (examples: 10s, 5m, 1h, 90)")
    unit = found.group(2).lower() if found.group(2) else None
    return float(found.group(1)) * _UNIT_SECONDS[unit]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("h", 3600.0), ("m", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def relative(iso: str | None, now: datetime | None = None) -> str:
    """'in 9s', '3m ago' for a table cell."""
    if not iso:
        return "-"
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    size = abs(delta)
    if size < 1:
        text = "now"
        return text
    if size < 120:
        amount = f"{size:.0f}s"
    elif size < 7200:
        amount = f"{size / 60:.0f}m"
    elif size < 172800:
        amount = f"{size / 3600:.0f}h"
    else:
        amount = f"{size / 86400:.0f}d"
    return f"in {amount}" if delta > 0 else f"{amount} ago"


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    return "\n".join(lines)


def websub_cell(w: dict[str, Any] | None) -> str:
    """WebSub state for the table: 'active 12/0' (pushes received / bad signatures)."""
    if not w or w.get("state", "off") == "off":
        return "off"
    return f"{w['state']} {w.get('pushes', 0)}/{w.get('bad_signatures', 0)}"


def feeds_table(feeds: list[dict[str, Any]], now: datetime | None = None) -> str:
    if not feeds:
        return "no feeds"
    rows = []
    for feed in feeds:
        h = feed["health"]
        status = h["status"].upper() if h["status"] == "failing" else h["status"]
        error = (h["last_error"] or "")[:60] if h["consecutive_errors"] else ""
        rows.append(
            [
                feed["id"],
                status,
                format_duration(feed["interval_seconds"]) + ("" if feed["adaptive"] else " fixed"),
                relative(h["next_poll_at"], now),
                relative(h["last_poll_at"], now),
                h["last_result"] or "-",
                str(h["consecutive_errors"]),
                str(h["stories"]),
                websub_cell(h.get("websub")),
                error or feed["url"],
            ]
        )
    header = [
        "ID",
        "STATUS",
        "EVERY",
        "NEXT POLL",
        "LAST POLL",
        "RESULT",
        "ERRORS",
        "STORIES",
        "WEBSUB",
        "URL / LAST ERROR",
    ]
    return table(rows, header)


def feed_detail(feed: dict[str, Any]) -> str:
    h = feed["health"]
    pairs = [
        ("id", feed["id"]),
        ("url", feed["url"]),
        ("title", feed["title"] or "-"),
        ("status", h["status"]),
        (
            "interval",
            format_duration(feed["interval_seconds"])
            + (" (adaptive)" if feed["adaptive"] else " (fixed)"),
        ),
        ("next poll", f"{relative(h['next_poll_at'])} ({h['next_poll_at'] or '-'})"),
        ("last poll", f"{relative(h['last_poll_at'])} ({h['last_poll_at'] or '-'})"),
        ("last result", f"{h['last_result'] or '-'} (HTTP {h['last_http_status'] or '-'})"),
        ("errors", str(h["consecutive_errors"])),
        ("last error", h["last_error"] or "-"),
        ("entries", str(h["entries_last_poll"] if h["entries_last_poll"] is not None else "-")),
        ("stories", str(h["stories"])),
        ("etag", h["etag"] or "-"),
        ("last-modified", h["last_modified"] or "-"),
    ]
    w = h.get("websub") or {"summary": "off"}
    pairs += [
        ("websub", w["summary"] + (f" ({w['reason']})" if w.get("reason") else "")),
        ("hub", w.get("hub") or "-"),
        ("last push", f"{relative(w.get('last_push_at'))} ({w.get('last_push_at') or '-'})"),
        ("pushes", f"{w.get('pushes', 0)} received, {w.get('bad_signatures', 0)} bad signatures"),
    ]
    return "\n".join(f"{k + ':':<15}{v}" for k, v in pairs)


# -- talking to the service ------------------------------------------------------------------


class AdminClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if not self.token:
            raise FeedsCliError("no admin token: set LIVEUPDATES_ADMIN_TOKEN or pass --token")
        url = self.base_url + path
        try:
            response = httpx.request(
                method,
                url,
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=self.timeout,
            )
        except httpx.InvalidURL as exc:
            raise FeedsCliError(f"bad service URL {self.base_url!r}: {exc}") from None
        except httpx.UnsupportedProtocol:
            raise FeedsCliError(
                f"bad service URL {self.base_url!r}: use http:// or https://"
            ) from None
        except httpx.ConnectError as exc:
            raise FeedsCliError(
                f"cannot reach liveupdates at {self.base_url}: {_reason(exc)}"
            ) from None
        except httpx.TimeoutException:
            raise FeedsCliError(
                f"liveupdates at {self.base_url} did not answer within {self.timeout:g} s"
            ) from None
        except httpx.HTTPError as exc:
            raise FeedsCliError(
                f"request to liveupdates at {self.base_url} failed: {exc}"
            ) from None
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and data is not None:
            return data
        message = ""
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            message = str(data["error"].get("message", ""))
        status = response.status_code
        if status == 401:
            raise FeedsCliError("admin token refused (check LIVEUPDATES_ADMIN_TOKEN or --token)")
        if status == 503 and message:
            raise FeedsCliError(message)
        if status == 404 and not message:
            raise FeedsCliError(f"{self.base_url} has no admin API (is it liveupdates?)")
        raise FeedsCliError(message or f"HTTP {status} from {response.request.url}")


def _reason(exc: httpx.ConnectError) -> str:
    text = str(exc)
    if "refused" in text.lower() or "errno 111" in text.lower():
        return "connection refused (is `liveupdates serve` running?)"
    return text or type(exc).__name__


# -- commands --------------------------------------------------------------------------------


def _feed_path(feed_id: str) -> str:
    from urllib.parse import quote

    return f"/v1/admin/feeds/{quote(feed_id, safe='')}"


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text)


def cmd_list(client: AdminClient, args: argparse.Namespace) -> None:
    data = client.request("GET", "/v1/admin/feeds")
    _print(args, data, feeds_table(data["feeds"]))


def cmd_show(client: AdminClient, args: argparse.Namespace) -> None:
    data = client.request("GET", _feed_path(args.id))
    _print(args, data, feed_detail(data))


def cmd_add(client: AdminClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {"url": args.url}
    if args.id:
        body["id"] = args.id
    if args.title:
        body["title"] = args.title
    if args.every is not None:
        body["interval_seconds"] = args.every
    if args.paused:
        body["paused"] = True
    if args.fixed:
        body["adaptive"] = False
    if args.no_websub:
        body["websub"] = False
    data = client.request("POST", "/v1/admin/feeds", body)
    _print(
        args,
        data,
        f"added {data['id']} ({data['url']}), every {format_duration(data['interval_seconds'])}",
    )


def cmd_set(client: AdminClient, args: argparse.Namespace) -> None:
    body: dict[str, Any] = {}
    if args.every is not None:
        body["interval_seconds"] = args.every
    if args.url:
        body["url"] = args.url
    if args.title is not None:
        body["title"] = args.title
    if args.adaptive is not None:
        body["adaptive"] = args.adaptive
    if args.websub is not None:
        body["websub"] = args.websub
    if not body:
        raise FeedsCliError(
            "nothing to set: give --every, --url, --title, --adaptive, --fixed, --websub"
            " or --no-websub"
        )
    data = client.request("PATCH", _feed_path(args.id), body)
    h = data["health"]
    _print(
        args,
        data,
        f"{data['id']}: every {format_duration(data['interval_seconds'])}"
        f"{'' if data['adaptive'] else ' (fixed)'}, next poll {relative(h['next_poll_at'])}",
    )


def _pauser(paused: bool) -> Callable[[AdminClient, argparse.Namespace], None]:
    def run(client: AdminClient, args: argparse.Namespace) -> None:
        data = client.request("PATCH", _feed_path(args.id), {"paused": paused})
        word = (
            "paused" if paused else f"resumed, next poll {relative(data['health']['next_poll_at'])}"
        )
        _print(args, data, f"{data['id']}: {word}")

    return run


def cmd_remove(client: AdminClient, args: argparse.Namespace) -> None:
    data = client.request("DELETE", _feed_path(args.id))
    _print(args, data, f"removed {data['deleted']}")


def cmd_poll(client: AdminClient, args: argparse.Namespace) -> int:
    data = client.request("POST", _feed_path(args.id) + "/poll")
    o = data["outcome"]
    if o is None:  # a web-only process: no worker ended the poll in time; it stays requested
        _print(args, data, f"{args.id}: poll requested; no worker has finished it yet")
        return 0
    if o["status"] == "error":
        text = f"{args.id}: error: {o['error'] or 'HTTP ' + str(o['http_status'])}"
    else:
        text = (
            f"{args.id}: {o['status']} (HTTP {o['http_status']}), {o['entries']} entries, "
            f"{o['events']} updates, {o['duration_ms']:.0f} ms"
        )
    _print(args, data, text)
    return 1 if o["status"] == "error" else 0


def cmd_audit(client: AdminClient, args: argparse.Namespace) -> None:
    data = client.request("GET", f"/v1/admin/audit?limit={args.limit}")
    rows = []
    for a in data["audit"]:
        change = a.get("after") if a["action"] == "feed.update" else a.get("result", "")
        rows.append(
            [
                a["at"],
                a["actor"],
                a["action"],
                a["feed_id"],
                json.dumps(change) if isinstance(change, dict) else str(change or ""),
            ]
        )
    _print(
        args,
        data,
        table(rows, ["AT", "WHO", "ACTION", "FEED", "CHANGE"]) if rows else "no changes recorded",
    )


# -- the parser ------------------------------------------------------------------------------


def add_feeds_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `feeds` to the `liveupdates` command; `args.run(args)` runs it and returns the status."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        dest="service_url",
        default=None,
        help="the running service (default: $LIVEUPDATES_URL or http://127.0.0.1:8000)",
    )
    common.add_argument(
        "--token", default=None, help="admin token (default: $LIVEUPDATES_ADMIN_TOKEN)"
    )
    common.add_argument("--json", action="store_true", help="print the API's JSON")

    feeds = subparsers.add_parser(
        "feeds",
        help="list and change feeds on the running service",
        description=__doc__.split("\n\n")[0],
    )
    sub = feeds.add_subparsers(dest="feeds_command", required=True)

    def command(name: str, text: str, fn: Callable[..., Any]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, parents=[common])
        p.set_defaults(handler=fn)
        return p

    command("list", "every feed with its health", cmd_list)
    p = command("show", "one feed with its health", cmd_show)
    p.add_argument("id")
    p = command("add", "add a feed (polled at once)", cmd_add)
    p.add_argument("feed_url", metavar="URL")
    p.add_argument("--id", default=None, help="feed id (default: derived from the URL)")
    p.add_argument("--title", default=None)
    p.add_argument(
        "--every", type=parse_duration, default=None, help="interval: 10s, 5m, 1h (default 60s)"
    )
    p.add_argument("--paused", action="store_true", help="add it paused")
    p.add_argument(
        "--fixed", action="store_true", help="poll exactly every interval (no adaptive pace)"
    )
    p.add_argument(
        "--no-websub", action="store_true", help="never subscribe at the feed's WebSub hub"
    )
    p = command("set", "change a feed's interval, URL, title or mode", cmd_set)
    p.add_argument("id")
    p.add_argument("--every", type=parse_duration, default=None, help="interval: 10s, 5m, 1h")
    p.add_argument("--feed-url", dest="url", default=None, help="new feed URL")
    p.add_argument("--title", default=None)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--adaptive", dest="adaptive", action="store_const", const=True, default=None)
    mode.add_argument("--fixed", dest="adaptive", action="store_const", const=False)
    push = p.add_mutually_exclusive_group()
    push.add_argument(
        "--websub",
        dest="websub",
        action="store_const",
        const=True,
        default=None,
        help="subscribe at the feed's WebSub hub when it names one (the default)",
    )
    push.add_argument("--no-websub", dest="websub", action="store_const", const=False)
    for name, paused in (("pause", True), ("resume", False)):
        p = command(name, f"{name} polling a feed", _pauser(paused))
        p.add_argument("id")
    p = command("remove", "stop polling a feed and forget it (its stories stay)", cmd_remove)
    p.add_argument("id")
    p = command("poll", "poll a feed now and show the outcome", cmd_poll)
    p.add_argument("id")
    p = command("audit", "recent changes: who, what, when", cmd_audit)
    p.add_argument("--limit", type=int, default=20)
    feeds.set_defaults(run=run)
    return feeds


def run(args: argparse.Namespace) -> int:
    base = os.environ.get("LIVEUPDATES_URL") or DEFAULT_URL
    if getattr(args, "service_url", None):
        base = args.service_url
    token = args.token or os.environ.get("LIVEUPDATES_ADMIN_TOKEN")
    if not getattr(args, "verbose", False):
        # httpx logs every request at INFO; the table is the output here.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.feeds_command == "add":
        args.url = args.feed_url
    client = AdminClient(base, token)
    try:
        status = args.handler(client, args)
    except FeedsCliError as exc:
        print(f"liveupdates feeds: {exc}", file=sys.stderr)
        return 1
    return status if isinstance(status, int) else 0
