"""Callback tokens: the last path segment of /v1/websub/<token>. Pure.

A token is `<feed id>~<random part>`: it names the feed (so the callback finds the subscription
with one read) and is unguessable (so nobody but the hub we told can reach the callback). The
whole token is compared with the stored one in constant time.
"""

from __future__ import annotations

import hmac
import re
import secrets

from liveupdates.feeds.config import FEED_ID_RE

SEPARATOR = "~"  # never part of a feed id
RANDOM_BYTES = 32
_RANDOM_RE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
MAX_TOKEN_LENGTH = 64 + 1 + 128


def new_token(feed_id: str) -> str:
    return f"{feed_id}{SEPARATOR}{secrets.token_urlsafe(RANDOM_BYTES)}"


def new_secret() -> str:
    """hub.secret: random per subscription (WebSub asks for at most 200 bytes)."""
    return secrets.token_urlsafe(32)


def token_feed(token: str) -> str | None:
    """The feed a well-formed token names, else None (checked before any store read)."""
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        return None
    feed_id, sep, random_part = token.partition(SEPARATOR)
    if not sep or not FEED_ID_RE.fullmatch(feed_id) or not _RANDOM_RE.match(random_part):
        return None
    return feed_id


def same_token(stored: str, given: str) -> bool:
    return hmac.compare_digest(stored.encode(), given.encode())


def callback_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/v1/websub/{token}"
