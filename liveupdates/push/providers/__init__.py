"""The push providers, built for a process from its settings.

The provider modules (webpush.py, apns.py, fcm.py, vapid.py) are imported only here and only when
built, so a process that sends nothing never loads their libraries.
"""

from __future__ import annotations

import contextlib
import importlib
import ipaddress
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import urlsplit

from liveupdates.models import Platform
from liveupdates.netguard.hosts import loopback_networks
from liveupdates.push.model import Provider
from liveupdates.settings import Settings, SettingsError


class VapidKeyLike(Protocol):
    """What the API and the Web Push provider need of a VAPID key (providers/vapid.VapidKey)."""

    def private_pem(self) -> str: ...

    def public_key_b64url(self) -> str: ...


def _module(name: str) -> Any:
    return importlib.import_module(f"liveupdates.push.providers.{name}")


def generate_vapid_key() -> VapidKeyLike:
    key: VapidKeyLike = _module("vapid").VapidKey.generate()
    return key


def load_vapid_key(text: str) -> VapidKeyLike:
    """A PEM key, or the base64url raw private value web-push tools print; ValueError else."""
    key: VapidKeyLike = _module("vapid").VapidKey.parse(text)
    return key


def loopback_urls(urls: Iterable[str]) -> list[str]:
    """The loopback addresses `urls` name as their host, as CIDR networks (tests' local services)."""
    out: list[str] = []
    for url in urls:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(urlsplit(url).hostname or "")
            if address.is_loopback:
                out.append(str(ipaddress.ip_network(address)))
    return out


def guard_allow(settings: Settings) -> tuple[str, ...]:
    """Networks the address guard lets push sends reach besides public addresses: the intranet
    networks of fetch.allow_networks, and the loopback test hosts ops named themselves in
    push.webpush_hosts and the APNs / FCM URLs. Not the FCM token_uri, which the credentials
    file names: a loopback or private one passes only when fetch.allow_networks allows it."""
    ops_urls = (settings.push_apns_url, settings.push_apns_sandbox_url, settings.push_fcm_url)
    return tuple(
        dict.fromkeys(
            (
                *settings.fetch_allow_networks,
                *loopback_networks(settings.push_webpush_hosts),
                *loopback_urls(ops_urls),
            )
        )
    )


def build_providers(settings: Settings, key: VapidKeyLike) -> dict[Platform, Provider]:
    """Web Push always; APNs and FCM when configured. A key or credentials file that cannot be
    used is a SettingsError naming the setting (one line at start, never the key)."""
    providers: dict[Platform, Provider] = {}
    allow_networks = guard_allow(settings)
    try:
        providers["webpush"] = _module("webpush").WebPushProvider(
            key,
            settings.vapid_subject,
            hosts=settings.push_webpush_hosts,
            allow_networks=allow_networks,
        )
        if settings.apns_configured:
            providers["apns"] = _module("apns").ApnsProvider(
                key_file=settings.push_apns_key_file,
                key_id=settings.push_apns_key_id,
                team_id=settings.push_apns_team_id,
                topic=settings.push_apns_topic,
                url=settings.push_apns_url,
                sandbox_url=settings.push_apns_sandbox_url,
                allow_networks=allow_networks,
            )
        if settings.fcm_configured:
            providers["fcm"] = _module("fcm").FcmProvider(
                credentials_file=settings.push_fcm_credentials_file,
                url=settings.push_fcm_url,
                allow_networks=allow_networks,
            )
    except (ValueError, OSError) as exc:
        raise SettingsError(f"device push: {exc}") from None
    return providers
