"""Requests to WebSub hubs: subscribe and unsubscribe (WebSub §5.1).

`make_hub_client` is the one place the HTTP client for hubs is built, so the outbound address
guard (hub URLs come from feeds, so from outside) can be put in front of it in one spot; its
`allow_networks` is passed through for the networks ops allow (tests: loopback).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from liveupdates.feeds.fetch import USER_AGENT
from liveupdates.settings import Settings

log = logging.getLogger("liveupdates.websub")

# A hub answers a subscription request at once (202) and verifies later: a short wait suffices.
HUB_TIMEOUT = 10.0
MAX_REASON = 200


def make_hub_client(settings: Settings, *, allow_networks: Sequence[str] = ()) -> httpx.AsyncClient:
    """The HTTP client every hub request goes through.

    `allow_networks` (CIDRs) is for the outbound address guard, which refuses private, loopback
    and link-local addresses unless allowed; this client does not resolve addresses itself.
    """
    del allow_networks  # used by the address guard once it wraps this client
    return httpx.AsyncClient(
        timeout=httpx.Timeout(
            min(HUB_TIMEOUT, settings.fetch_total_timeout),
            connect=settings.fetch_connect_timeout,
        ),
        follow_redirects=False,  # a hub that redirects a POST is not followed blindly
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True, slots=True)
class HubAnswer:
    accepted: bool
    error: str | None = None


async def hub_request(
    client: httpx.AsyncClient,
    hub: str,
    *,
    mode: str,
    topic: str,
    callback: str,
    secret: str | None = None,
    lease_seconds: int | None = None,
) -> HubAnswer:
    """POST one (un)subscribe request. Never raises for network or HTTP trouble."""
    form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": callback}
    if secret is not None:
        form["hub.secret"] = secret
    if lease_seconds is not None:
        form["hub.lease_seconds"] = str(lease_seconds)
    try:
        response = await client.post(hub, data=form)
    except httpx.HTTPError as exc:
        return HubAnswer(False, f"hub unreachable: {type(exc).__name__}: {exc}"[:MAX_REASON])
    if 200 <= response.status_code < 300:
        return HubAnswer(True)
    text = response.text.strip().splitlines()[0][:100] if response.text.strip() else ""
    return HubAnswer(False, f"hub answered HTTP {response.status_code} {text}".strip())
