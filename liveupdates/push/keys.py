"""The VAPID key every process signs with: the configured one, else one generated once and kept
in the store (set-if-absent, so concurrent first starts agree on one)."""

from __future__ import annotations

from liveupdates.push.providers import VapidKeyLike, generate_vapid_key, load_vapid_key
from liveupdates.settings import Settings, SettingsError
from liveupdates.store.devices import DeviceStore


async def vapid_key(settings: Settings, devices: DeviceStore) -> VapidKeyLike:
    if settings.push_vapid_private_key:
        try:
            return load_vapid_key(settings.push_vapid_private_key)
        except ValueError:
            raise SettingsError(
                "setting push_vapid_private_key is neither a PEM P-256 private key nor a"
                " base64url 32-byte private value"
            ) from None
    pem = await devices.keep_vapid_key(generate_vapid_key().private_pem())
    return load_vapid_key(pem)
