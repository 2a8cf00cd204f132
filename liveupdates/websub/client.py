"""Requests to WebSub hubs: subscribe and unsubscribe (WebSub §5.1).

Hub URLs come from feeds, so from outside: `make_hub_client` builds the one HTTP client for hubs
on the outbound address guard (liveupdates/netguard), with the same policy as feed fetches
(public addresses, plus `fetch.allow_networks`). Every connection is checked when it is made, so
a hub that resolves (or later re-resolves) to a refused address is never connected; the request
fails with the guard's reason, which the subscription then shows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import httpx

from liveupdates.feeds.fetch import USER_AGENT
from liveupdates.models import MAX_REASON
from liveupdates.netguard import AddressPolicy, AddressRefused
from liveupdates.netguard.transport import guarded_client
from liveupdates.settings import Settings

log = logging.getLogger("liveupdates.websub")

# A hub answers a subscription request at once (202) and verifies later: a short wait suffices.
HUB_TIMEOUT = 10.0


def make_hub_client(settings: Settings) -> httpx.AsyncClient:
    """The HTTP client every hub request goes through, behind the address guard."""
    return guarded_client(
        AddressPolicy.allowing(settings.fetch_allow_networks),
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
    except AddressRefused as exc:
        # "address 10.0.0.1 is private; see fetch.allow_networks": never connected.
        return HubAnswer(False, f"hub refused: {exc}"[:MAX_REASON])
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        return HubAnswer(False, f"hub unreachable: {type(exc).__name__}: {exc}"[:MAX_REASON])
    if 200 <= response.status_code < 300:
        return HubAnswer(True)
    text = response.text.strip().splitlines()[0][:100] if response.text.strip() else ""
    return HubAnswer(False, f"hub answered HTTP {response.status_code} {text}".strip())
