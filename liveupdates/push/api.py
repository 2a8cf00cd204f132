"""The public device-push API (docs/push.md): register devices, follow channels, the VAPID key.

Registration is anonymous (apps have no accounts here), so it is the only thing an anonymous
caller may create, and it is bounded: a per-address rate (push.register_per_minute), at most
push.max_subscriptions channels per device. Everything else needs the device's bearer secret,
kept only as a hash and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveupdates.hub.edge import client_address, read_body
from liveupdates.hub.limits import Refused, RequestRate
from liveupdates.hub.rest import error_response
from liveupdates.hub.state import feed_exists
from liveupdates.push.dispatcher import TOUCH_EVERY
from liveupdates.push.registration import FieldError, parse_channel, parse_device, parse_notify
from liveupdates.settings import Settings
from liveupdates.store.base import Store
from liveupdates.store.devices import Cursor, DeviceRecord, DeviceStore, SubscriptionLimit
from liveupdates.validate import plausible_id

MAX_BODY_BYTES = 8192

KeySource = Callable[[], Awaitable[str]]


def secret_hash(secret: str) -> str:
    # The secret is 256 random bits: a plain digest is enough to keep it out of the store.
    return hashlib.sha256(secret.encode()).hexdigest()


def bad_field(exc: FieldError) -> JSONResponse:
    """The 400 for a refused field, naming it."""
    return error_response(400, "bad_request", str(exc), field=exc.field)


def registration_rate(per_minute: int) -> RequestRate:
    """POST /v1/devices per client address: `per_minute`, in bursts of as many."""
    return RequestRate(per_minute / 60.0, burst=float(per_minute))


class PushApi:
    def __init__(
        self, settings: Settings, store: Store, devices: DeviceStore, public_key: KeySource
    ) -> None:
        self.settings = settings
        self.store = store
        self.devices = devices
        self.public_key = public_key
        self.rate = registration_rate(settings.push_register_per_minute)

    async def _body(self, request: Request, *, optional: bool = False) -> Any:
        raw = await read_body(request, MAX_BODY_BYTES)
        if raw is None:
            raise FieldError("body", f"is larger than {MAX_BODY_BYTES} bytes")
        if not raw.strip():
            if optional:
                return None
            raise FieldError("body", "is required (JSON)")
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise FieldError("body", "is not valid JSON") from None

    async def _device(self, request: Request) -> DeviceRecord | JSONResponse:
        """The device the path names, if the bearer secret is its own."""
        device_id = request.path_params["device_id"]
        record = await self.devices.get(device_id) if plausible_id(device_id) else None
        if record is None:
            return error_response(404, "not_found", "no such device")
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return error_response(
                401, "unauthorized", "missing bearer secret (Authorization: Bearer ...)"
            )
        if not hmac.compare_digest(secret_hash(given), record.secret_hash):
            return error_response(401, "unauthorized", "wrong secret for this device")
        now = time.time()
        if now - record.seen_at > TOUCH_EVERY:  # the device TTL counts days: no write per call
            await self.devices.touch(record.device.id, now)
        return record

    async def vapid_public_key(self, request: Request) -> Response:
        return JSONResponse({"publicKey": await self.public_key()})

    async def register(self, request: Request) -> Response:
        try:
            self.rate.check(client_address(request.scope), time.monotonic())
        except Refused as exc:
            wait = exc.retry_after
            return error_response(
                429,
                "rate_limited",
                f"too many registrations from your address; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        try:
            device = parse_device(
                await self._body(request), self.settings, secrets.token_urlsafe(16)
            )
        except FieldError as exc:
            return bad_field(exc)
        secret = secrets.token_urlsafe(32)
        device_id = await self.devices.register(device, secret_hash(secret), time.time())
        return JSONResponse({"device_id": device_id, "secret": secret}, status_code=201)

    async def put_subscription(self, request: Request) -> Response:
        found = await self._device(request)
        if isinstance(found, JSONResponse):
            return found
        channel = request.path_params["channel"]
        try:
            kind, ident = parse_channel(channel)
            notify = parse_notify(await self._body(request, optional=True))
        except FieldError as exc:
            return bad_field(exc)
        exists = (
            await self.store.latest(ident) is not None
            if kind == "story"
            else await feed_exists(self.store, ident)
        )
        if not exists:
            return error_response(404, "not_found", f"no channel {channel[:80]}")
        # A channel nobody follows starts from the log's end: its first follower is told of what
        # happens from now on (not of what happened while nobody listened).
        bounds = await self.store.log_bounds(channel)
        position = Cursor(bounds.epoch, bounds.last)
        if (await self.devices.followers(channel, None, 1)).followers:
            await self.devices.init_cursor(channel, position)
        else:
            await self.devices.set_cursor(channel, position)
        try:
            await self.devices.subscribe(
                found.device.id, channel, notify, self.settings.push_max_subscriptions
            )
        except SubscriptionLimit as exc:
            return error_response(409, "too_many_subscriptions", str(exc))
        return JSONResponse({"channel": channel, "notify": notify})

    async def list_subscriptions(self, request: Request) -> Response:
        found = await self._device(request)
        if isinstance(found, JSONResponse):
            return found
        subs = await self.devices.subscriptions(found.device.id)
        return JSONResponse({"subscriptions": [{"channel": c, "notify": n} for c, n in subs]})

    async def delete_subscription(self, request: Request) -> Response:
        found = await self._device(request)
        if isinstance(found, JSONResponse):
            return found
        channel = request.path_params["channel"]
        try:
            kind, ident = parse_channel(channel)
        except FieldError as exc:
            return bad_field(exc)
        await self.devices.unsubscribe(found.device.id, channel)
        if kind == "story":
            # Nothing more about the story: drop what was waiting for the gap to end.
            await self.devices.update_states([(found.device.id, ident)], lambda _k, _s: None)
        return Response(status_code=204)

    async def delete_device(self, request: Request) -> Response:
        found = await self._device(request)
        if isinstance(found, JSONResponse):
            return found
        await self.devices.delete(found.device.id)
        return Response(status_code=204)


def push_routes(
    settings: Settings, store: Store, devices: DeviceStore, public_key: KeySource
) -> list[BaseRoute]:
    api = PushApi(settings, store, devices, public_key)
    device = "/v1/devices/{device_id}"
    sub = device + "/subscriptions/{channel}"
    return [
        Route("/v1/push/vapid-public-key", api.vapid_public_key, methods=["GET"]),
        Route("/v1/devices", api.register, methods=["POST"]),
        Route(device, api.delete_device, methods=["DELETE"]),
        Route(device + "/subscriptions", api.list_subscriptions, methods=["GET"]),
        Route(sub, api.put_subscription, methods=["PUT"]),
        Route(sub, api.delete_subscription, methods=["DELETE"]),
    ]
