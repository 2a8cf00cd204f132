"""Strict local stand-ins for the push services: Web Push, APNs and FCM.

Each runs in a thread of its own (hypercorn, on a free 127.0.0.1 port) so sync and async tests,
and `liveupdates` processes a test starts, can all use it. Strict means a request a real service
would refuse is refused here too, and recorded in `rejected` (tests assert it stays empty):

``WebPushServer()``  (HTTP/1.1 and h2c, plain http on loopback)
    ``subscribe(application_server_key=None) -> BrowserSubscription``: what a browser's
    `pushManager.subscribe` makes: a P-256 key pair and a 16-byte auth secret, and an endpoint on
    this server. Every POST to an endpoint is checked like a push service does: `TTL` present,
    `Content-Encoding: aes128gcm`, `Urgency` and `Topic` well formed, body at most 4096 bytes, the
    VAPID `Authorization: vapid t=..., k=...` JWT verified (ES256 signature with `k`, `aud` = this
    server's origin, `exp` in the future and within 24 h, `sub` mailto:/https:, `k` = the
    subscription's applicationServerKey when it was given one), and the body *decrypted* with the
    subscription's private key (RFC 8291). Delivered messages land in `received` (`PushMessage`:
    headers, decoded JSON payload, JWT claims).
``ApnsServer(credentials)``  (HTTP/2 over TLS; `ssl_context` trusts its certificate)
    `POST /3/device/<hex token>` checked like APNs: HTTP/2 only, `authorization: bearer <ES256 JWT>`
    signed by the .p8 key of `credentials` with its `kid` and `iss` = team id, issued within the
    hour; `apns-topic`, `apns-push-type: alert`, `apns-priority` 5/10, `apns-expiration`,
    `apns-collapse-id` at most 64 bytes; JSON body with `aps.alert` at most 4096 bytes.
``FcmServer()``  (HTTP/1.1)
    `POST /token`: the service-account JWT-bearer grant (RS256 assertion verified with the account's
    public key, `aud` = this token URI, the firebase.messaging scope) issues bearer tokens;
    `POST /v1/projects/<p>/messages:send` wants one it issued (unexpired, for that project) and the
    v1 message shape (token, notification strings, data string to string, android options).

All three: ``answer(target, status, *, reason=None, retry_after=None, times=None)`` makes the server
give that answer for a subscription / device token after the checks pass (`times` answers, then
normal again; None: until told otherwise), ``attempts`` lists (target, status) of every request.

``make_apns_key(directory) -> ApnsCredentials`` writes a .p8 key like Apple's;
``FcmServer.make_credentials(directory) -> FcmAccount`` writes a service-account JSON whose
`token_uri` is this server's.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import http_ece
import jwt
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from liveupdates.models import Device

__all__ = [
    "ApnsCredentials",
    "ApnsMessage",
    "ApnsServer",
    "BrowserSubscription",
    "FcmAccount",
    "FcmMessage",
    "FcmServer",
    "PushMessage",
    "WebPushServer",
    "make_apns_key",
]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_VAPID = re.compile(r"vapid t=([A-Za-z0-9_.-]+),\s*k=([A-Za-z0-9_-]+)=*")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _point(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


# -- running an ASGI app in a thread --------------------------------------------------------------


@dataclass
class _Answer:
    status: int
    reason: str | None
    retry_after: str | None
    times: int | None


class _ThreadServer:
    """An ASGI app served by hypercorn on a free 127.0.0.1 port, in a thread with its own loop."""

    scheme = "http"

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.rejected: list[str] = []
        self.attempts: list[tuple[str, int]] = []
        self._answers: dict[str, _Answer] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tmp = tempfile.TemporaryDirectory(prefix="pushserver-")
        self.port = 0

    # subclasses
    def app(self) -> Starlette:
        raise NotImplementedError

    def configure(self, config: Config) -> None:
        """Set TLS files and the like."""

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted sockets inherit it (Linux): without it, a response written in two parts waits
        # for the client's delayed ACK (40 ms) — hypercorn sets it only on sockets it binds itself.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(256)  # connections wait in the backlog until hypercorn serves
        self.port = sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]
        config.graceful_timeout = 1.0
        config.errorlog = None
        config.accesslog = None
        self.configure(config)
        app = self.app()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main(app, config)),
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")

    async def _main(self, app: Starlette, config: Config) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        stop = self._stop
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
        self._tmp.cleanup()

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # answers tests ask for
    def answer(
        self,
        target: str,
        status: int,
        *,
        reason: str | None = None,
        retry_after: float | str | None = None,
        times: int | None = None,
    ) -> None:
        """Answer `status` (with `reason`, `Retry-After`) for `target` after the checks pass:
        `times` requests, or all (None). status 200 goes back to normal."""
        key = self._target_key(target)
        with self._lock:
            if status < 300:
                self._answers.pop(key, None)
            else:
                after = None if retry_after is None else str(retry_after)
                self._answers[key] = _Answer(status, reason, after, times)

    def _target_key(self, target: Any) -> str:
        return str(target)

    def _take_answer(self, key: str) -> _Answer | None:
        with self._lock:
            found = self._answers.get(key)
            if found is None:
                return None
            if found.times is not None:
                found.times -= 1
                if found.times <= 0:
                    del self._answers[key]
            return found

    def _reject(self, target: str, status: int, reason: str) -> None:
        self.rejected.append(f"{target}: {status} {reason}")
        self.attempts.append((target, status))


def _jsonable(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


async def _body(request: Request) -> bytes:
    return await request.body()


# -- Web Push -------------------------------------------------------------------------------------


@dataclass
class BrowserSubscription:
    """What a browser's PushSubscription holds: the endpoint, and its keys (the private half
    stays in the browser, here in the test)."""

    endpoint: str
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    application_server_key: str | None = None

    @property
    def p256dh(self) -> str:
        return b64url(_point(self.private_key.public_key()))

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def keys(self) -> dict[str, str]:
        return {"p256dh": self.p256dh, "auth": self.auth}

    def to_json(self) -> dict[str, Any]:
        """What `PushSubscription.toJSON()` gives, as a page posts it to /v1/devices."""
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": self.keys()}

    def device(self, device_id: str = "device-1") -> Device:
        return Device(id=device_id, platform="webpush", address=self.endpoint, keys=self.keys())


@dataclass(frozen=True)
class PushMessage:
    subscription: str  # the subscription id (last part of the endpoint)
    headers: dict[str, str]
    payload: Any  # the decrypted body, parsed as JSON
    claims: dict[str, Any]  # the VAPID JWT's
    jwt: str


class WebPushServer(_ThreadServer):
    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: dict[str, BrowserSubscription] = {}
        self.received: list[PushMessage] = []  # type: ignore[assignment]

    def subscribe(self, application_server_key: str | None = None) -> BrowserSubscription:
        sub_id = secrets.token_urlsafe(16)
        subscription = BrowserSubscription(
            endpoint=f"{self.url}/push/{sub_id}",
            id=sub_id,
            private_key=ec.generate_private_key(ec.SECP256R1()),
            auth_secret=secrets.token_bytes(16),
            application_server_key=application_server_key,
        )
        self.subscriptions[sub_id] = subscription
        return subscription

    def _target_key(self, target: Any) -> str:
        return target.id if isinstance(target, BrowserSubscription) else str(target)

    def messages_for(self, subscription: BrowserSubscription) -> list[PushMessage]:
        return [m for m in self.received if m.subscription == subscription.id]

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/push/{sub_id}", self._push, methods=["POST"])])

    async def _push(self, request: Request) -> Response:
        sub_id = request.path_params["sub_id"]
        subscription = self.subscriptions.get(sub_id)
        if subscription is None:
            self.attempts.append((sub_id, 404))
            return PlainTextResponse("no such subscription", status_code=404)
        headers = _jsonable(request)
        body = await _body(request)
        problem, claims, token = self._check(subscription, headers, body)
        if problem is not None:
            status, reason = problem
            self._reject(sub_id, status, reason)
            return PlainTextResponse(reason, status_code=status)
        try:
            plain = http_ece.decrypt(
                body,
                private_key=subscription.private_key,
                auth_secret=subscription.auth_secret,
                version="aes128gcm",
            )
            payload = json.loads(plain)
        except Exception as exc:  # any failure to decrypt or parse is the sender's fault
            self._reject(sub_id, 400, f"payload does not decrypt: {exc!r}")
            return PlainTextResponse("bad payload", status_code=400)
        answer = self._take_answer(sub_id)
        if answer is not None:
            self.attempts.append((sub_id, answer.status))
            extra = {"Retry-After": answer.retry_after} if answer.retry_after else {}
            return PlainTextResponse(
                answer.reason or "told to", status_code=answer.status, headers=extra
            )
        self.received.append(PushMessage(sub_id, headers, payload, claims, token))
        self.attempts.append((sub_id, 201))
        return Response(
            status_code=201, headers={"Location": f"{self.url}/message/{secrets.token_hex(8)}"}
        )

    def _check(
        self, subscription: BrowserSubscription, headers: dict[str, str], body: bytes
    ) -> tuple[tuple[int, str] | None, dict[str, Any], str]:
        ttl = headers.get("ttl", "")
        if not ttl.isdigit():
            return (400, "TTL header missing or not a number"), {}, ""
        if headers.get("content-encoding") != "aes128gcm":
            return (400, "Content-Encoding is not aes128gcm"), {}, ""
        urgency = headers.get("urgency", "normal")
        if urgency not in ("very-low", "low", "normal", "high"):
            return (400, f"bad Urgency {urgency!r}"), {}, ""
        if "topic" in headers and not _TOPIC.fullmatch(headers["topic"]):
            return (400, f"bad Topic {headers['topic']!r}"), {}, ""
        if len(body) > 4096:
            return (413, "payload too large"), {}, ""
        match = _VAPID.fullmatch(headers.get("authorization", ""))
        if match is None:
            return (401, "no VAPID authorization"), {}, ""
        token, k = match.groups()
        if subscription.application_server_key and k != subscription.application_server_key:
            return (403, "VAPID key is not the subscription's applicationServerKey"), {}, token
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(k))
            claims = jwt.decode(
                token,
                public,
                algorithms=["ES256"],
                audience=self.url,
                options={"require": ["aud", "exp", "sub"]},
            )
        except (ValueError, jwt.PyJWTError) as exc:
            return (403, f"VAPID JWT refused: {exc}"), {}, token
        if claims["exp"] > time.time() + 24 * 3600:
            return (403, "VAPID exp more than 24 hours ahead"), claims, token
        sub = str(claims["sub"])
        if not (sub.startswith("mailto:") or sub.startswith("https://")):
            return (403, "VAPID sub is not mailto: or https:"), claims, token
        return None, claims, token


# -- APNs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApnsCredentials:
    key_file: Path
    key_id: str
    team_id: str
    topic: str
    public_key: ec.EllipticCurvePublicKey


def make_apns_key(directory: Path, *, topic: str = "com.example.liveupdates") -> ApnsCredentials:
    """A .p8 key file like the one Apple's developer site hands out (PKCS#8 PEM, P-256)."""
    key = ec.generate_private_key(ec.SECP256R1())
    key_id = secrets.token_hex(5).upper()
    path = Path(directory) / f"AuthKey_{key_id}.p8"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ApnsCredentials(path, key_id, secrets.token_hex(5).upper(), topic, key.public_key())


@dataclass(frozen=True)
class ApnsMessage:
    token: str
    headers: dict[str, str]
    payload: dict[str, Any]
    jwt: str
    http_version: str


class ApnsServer(_ThreadServer):
    scheme = "https"

    def __init__(self, credentials: ApnsCredentials) -> None:
        super().__init__()
        self.credentials = credentials
        self.received: list[ApnsMessage] = []  # type: ignore[assignment]
        self.jwts: list[str] = []  # every distinct provider token seen, in order
        self.ca = trustme.CA()
        self.ssl_context = ssl.create_default_context()  # what a client uses to trust this server
        self.ca.configure_trust(self.ssl_context)

    def configure(self, config: Config) -> None:
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        certfile = Path(self._tmp.name) / "cert.pem"
        keyfile = Path(self._tmp.name) / "key.pem"
        cert.cert_chain_pems[0].write_to_path(str(certfile))
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(str(certfile), append=True)
        cert.private_key_pem.write_to_path(str(keyfile))
        config.certfile = str(certfile)
        config.keyfile = str(keyfile)
        config.alpn_protocols = ["h2"]

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/3/device/{token}", self._push, methods=["POST"])])

    @staticmethod
    def _refuse(status: int, reason: str, retry_after: str | None = None) -> Response:
        headers = {"apns-id": secrets.token_hex(16)}
        if retry_after:
            headers["Retry-After"] = retry_after
        return JSONResponse({"reason": reason}, status_code=status, headers=headers)

    async def _push(self, request: Request) -> Response:
        token = request.path_params["token"]
        headers = _jsonable(request)
        body = await _body(request)
        version = str(request.scope.get("http_version"))
        problem = self._check(token, headers, body, version)
        if problem is not None:
            status, reason = problem
            self._reject(token, status, reason)
            return self._refuse(status, reason)
        answer = self._take_answer(token)
        if answer is not None:
            self.attempts.append((token, answer.status))
            return self._refuse(answer.status, answer.reason or "Told", answer.retry_after)
        bearer = headers["authorization"][len("bearer ") :]
        self.received.append(ApnsMessage(token, headers, json.loads(body), bearer, version))
        self.attempts.append((token, 200))
        return Response(status_code=200, headers={"apns-id": secrets.token_hex(16)})

    def _check(
        self, token: str, headers: dict[str, str], body: bytes, version: str
    ) -> tuple[int, str] | None:
        if version != "2":
            return 400, "HTTP/2 only"
        auth = headers.get("authorization", "")
        if not auth.startswith("bearer "):
            return 403, "MissingProviderToken"
        bearer = auth[len("bearer ") :]
        try:
            head = jwt.get_unverified_header(bearer)
            claims = jwt.decode(
                bearer,
                self.credentials.public_key,
                algorithms=["ES256"],
                options={"require": ["iss", "iat"], "verify_iat": True},
            )
        except jwt.PyJWTError:
            return 403, "InvalidProviderToken"
        if head.get("kid") != self.credentials.key_id or claims["iss"] != self.credentials.team_id:
            return 403, "InvalidProviderToken"
        if time.time() - float(claims["iat"]) > 3600:
            return 403, "ExpiredProviderToken"
        if bearer not in self.jwts:
            self.jwts.append(bearer)
        if headers.get("apns-topic") != self.credentials.topic:
            return 400, "TopicDisallowed"
        if headers.get("apns-push-type") != "alert":
            return 400, "InvalidPushType"
        if headers.get("apns-priority") not in ("5", "10"):
            return 400, "BadPriority"
        if not headers.get("apns-expiration", "").isdigit():
            return 400, "BadExpirationDate"
        collapse = headers.get("apns-collapse-id")
        if collapse is not None and len(collapse.encode()) > 64:
            return 400, "BadCollapseId"
        if not re.fullmatch(r"[0-9a-fA-F]{1,200}", token):
            return 400, "BadDeviceToken"
        if len(body) > 4096:
            return 413, "PayloadTooLarge"
        try:
            payload = json.loads(body)
            alert = payload["aps"]["alert"]
            if not isinstance(alert.get("title"), str) or not isinstance(alert.get("body"), str):
                raise ValueError("alert needs title and body")
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, "PayloadEmpty"
        return None


# -- FCM ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FcmAccount:
    credentials_file: Path
    project_id: str
    client_email: str
    public_key: rsa.RSAPublicKey


@dataclass(frozen=True)
class FcmMessage:
    project: str
    token: str
    message: dict[str, Any]
    bearer: str


_MESSAGE_FIELDS = {"name", "data", "notification", "android", "webpush", "apns", "fcm_options"}
_TARGETS = {"token", "topic", "condition"}
_ANDROID_FIELDS = {
    "collapse_key",
    "priority",
    "ttl",
    "restricted_package_name",
    "data",
    "notification",
    "fcm_options",
    "direct_boot_ok",
}


def _fcm_error(status: int, code: str, message: str, retry_after: str | None = None) -> Response:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
    names |= {404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
    body = {
        "error": {
            "code": status,
            "message": message,
            "status": names.get(status, "UNKNOWN"),
            "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
            ],
        }
    }
    headers = {"Retry-After": retry_after} if retry_after else {}
    return JSONResponse(body, status_code=status, headers=headers)


class FcmServer(_ThreadServer):
    def __init__(self, *, token_lifetime: int = 3600) -> None:
        super().__init__()
        self.token_lifetime = token_lifetime
        self.accounts: dict[str, FcmAccount] = {}  # client_email -> account
        self.issued: dict[str, tuple[str, float]] = {}  # access token -> (project, expiry)
        self.grants = 0
        self.received: list[FcmMessage] = []  # type: ignore[assignment]

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def make_credentials(
        self, directory: Path, *, project_id: str = "liveupdates-test"
    ) -> FcmAccount:
        """A service-account JSON like the Firebase console's, pointing at this token endpoint."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"push-{secrets.token_hex(3)}@{project_id}.iam.gserviceaccount.com"
        info = {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": secrets.token_hex(20),
            "private_key": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii"),
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        }
        path = Path(directory) / f"{project_id}-{secrets.token_hex(3)}.json"
        path.write_text(json.dumps(info))
        account = FcmAccount(path, project_id, email, key.public_key())
        self.accounts[email] = account
        return account

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (as after its hour)."""
        with self._lock:
            self.issued = {t: (p, 0.0) for t, (p, _) in self.issued.items()}

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
            ]
        )

    async def _token(self, request: Request) -> Response:
        # application/x-www-form-urlencoded, as the OAuth 2.0 token endpoint wants it
        if (
            request.headers.get("content-type", "").split(";")[0]
            != "application/x-www-form-urlencoded"
        ):
            self._reject("token", 400, "not a form")
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        form = {k: v[0] for k, v in parse_qs((await _body(request)).decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self._reject("token", 400, "unsupported_grant_type")
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        assertion = str(form.get("assertion", ""))
        try:
            email = jwt.decode(assertion, options={"verify_signature": False})["iss"]
            account = self.accounts[email]
            claims = jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                audience=self.token_uri,
                options={"require": ["iss", "aud", "iat", "exp", "scope"]},
            )
            if claims["exp"] - claims["iat"] > 3600:
                raise ValueError("assertion valid for more than an hour")
            if FCM_SCOPE not in str(claims["scope"]).split():
                raise ValueError("no firebase.messaging scope")
        except (KeyError, ValueError, jwt.PyJWTError) as exc:
            self._reject("token", 400, f"invalid_grant: {exc!r}")
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        access = "ya29." + secrets.token_urlsafe(32)
        with self._lock:
            self.issued[access] = (account.project_id, time.time() + self.token_lifetime)
            self.grants += 1
        return JSONResponse(
            {"access_token": access, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    async def _send(self, request: Request) -> Response:
        project = request.path_params["project"]
        auth = request.headers.get("authorization", "")
        bearer = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        issued = self.issued.get(bearer)
        if issued is None or issued[1] < time.time():
            self._reject("send", 401, "bearer token not issued here or expired")
            return _fcm_error(401, "THIRD_PARTY_AUTH_ERROR", "Request had invalid credentials.")
        if issued[0] != project:
            self._reject("send", 403, "token for another project")
            return _fcm_error(403, "SENDER_ID_MISMATCH", "Permission denied.")
        try:
            document = json.loads(await _body(request))
            message = self._check_message(document)
        except (ValueError, TypeError, KeyError) as exc:
            self._reject("send", 400, str(exc))
            return _fcm_error(400, "INVALID_ARGUMENT", str(exc))
        token = message["token"]
        answer = self._take_answer(token)
        if answer is not None:
            self.attempts.append((token, answer.status))
            code = answer.reason or {404: "UNREGISTERED", 429: "QUOTA_EXCEEDED"}.get(
                answer.status, "INTERNAL"
            )
            return _fcm_error(answer.status, code, "told to", answer.retry_after)
        self.received.append(FcmMessage(project, token, message, bearer))
        self.attempts.append((token, 200))
        return JSONResponse({"name": f"projects/{project}/messages/{secrets.token_hex(8)}"})

    @staticmethod
    def _check_message(document: Any) -> dict[str, Any]:
        if not isinstance(document, dict) or set(document) - {"message", "validate_only"}:
            raise ValueError("body must be {'message': ...}")
        message = document["message"]
        if not isinstance(message, dict):
            raise ValueError("message must be an object")
        unknown = set(message) - _MESSAGE_FIELDS - _TARGETS
        if unknown:
            raise ValueError(f"unknown message fields {sorted(unknown)}")
        if [t for t in _TARGETS if t in message] != ["token"] or not message["token"]:
            raise ValueError("message needs exactly one target: token")
        notification = message.get("notification", {})
        if set(notification) - {"title", "body", "image"} or not all(
            isinstance(v, str) for v in notification.values()
        ):
            raise ValueError("notification holds title/body/image strings")
        data = message.get("data", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ValueError("data values must be strings")
        android = message.get("android", {})
        if set(android) - _ANDROID_FIELDS:
            raise ValueError(f"unknown android fields {sorted(set(android) - _ANDROID_FIELDS)}")
        if "priority" in android and android["priority"] not in ("NORMAL", "HIGH"):
            raise ValueError("android.priority is NORMAL or HIGH")
        if "ttl" in android and not re.fullmatch(r"\d+(\.\d{1,9})?s", android["ttl"]):
            raise ValueError("android.ttl is a duration like '3600s'")
        if not isinstance(android.get("collapse_key", ""), str):
            raise ValueError("android.collapse_key is a string")
        if not isinstance(android.get("notification", {}).get("tag", ""), str):
            raise ValueError("android.notification.tag is a string")
        size = len(json.dumps({"data": data, "notification": notification}).encode())
        if size > 4096:
            raise ValueError("Android message is too big")
        return message
