"""VAPID (RFC 8292): the application server's P-256 key and the `Authorization: vapid` header.

The push service checks that the JWT is signed by the key the subscription was made with (the
page's applicationServerKey), that `aud` is its own origin and that `exp` is within a day. One JWT
per origin is reused until shortly before it expires: signing is cheap, but not free.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# RFC 8292 section 2: exp no more than 24 hours ahead. 12 hours leaves room for clock skew.
JWT_LIFETIME = 12 * 3600.0
# A cached JWT is renewed once less than this is left of it.
JWT_RENEW_BEFORE = 3600.0


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """base64url with or without padding (browsers leave it out); ValueError when unreadable."""
    text = text.strip()
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


class VapidKey:
    """The service's VAPID key pair (ECDSA P-256)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("a VAPID key must be an EC P-256 (prime256v1) key")
        self.private_key = private_key
        self.public_key_bytes = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: str) -> VapidKey:
        """A PEM private key (PKCS#8 or SEC1 "EC PRIVATE KEY"); ValueError when it is not one
        for P-256."""
        try:
            key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError) as exc:
            raise ValueError("not a PEM private key without a password") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("a VAPID key must be an EC P-256 (prime256v1) key")
        return cls(key)

    @classmethod
    def parse(cls, text: str) -> VapidKey:
        """The value of LIVEUPDATES_PUSH_VAPID_PRIVATE_KEY: a PEM key, or the base64url raw
        32-byte private value that `web-push generate-vapid-keys` and py-vapid print.
        ValueError (without the value) when it is neither."""
        text = text.strip()
        if text.startswith("-----BEGIN"):
            return cls.from_pem(text)
        try:
            raw = b64url_decode(text)
        except ValueError:
            raise ValueError("neither a PEM key nor a base64url P-256 private key") from None
        if len(raw) != 32:
            raise ValueError("a raw VAPID private key is 32 bytes (43 base64url characters)")
        try:
            key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
        except ValueError:
            raise ValueError("not a valid P-256 private key") from None
        return cls(key)

    def private_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")

    def public_key_b64url(self) -> str:
        """The uncompressed public point, base64url without padding: the page's
        applicationServerKey and the header's `k=`."""
        return b64url_encode(self.public_key_bytes)


def origin(url: str) -> str:
    """scheme://host[:port] of `url`, as the JWT's `aud` wants it (default ports left out)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = "" if parts.port in (None, default) else f":{parts.port}"
    return f"{parts.scheme}://{host}{port}"


def check_subject(subject: str) -> str:
    """The JWT's `sub`: a mailto: or https: URI where the push service can reach the operator."""
    if not (subject.startswith("mailto:") and len(subject) > 7) and not (
        subject.startswith("https://") and len(subject) > 8
    ):
        raise ValueError("the VAPID subject must be a mailto: or https: URI (push.vapid_subject)")
    return subject


class VapidSigner:
    """`Authorization` header values for push endpoints, one JWT per origin, reused until
    JWT_RENEW_BEFORE seconds before it expires."""

    def __init__(
        self,
        key: VapidKey,
        subject: str,
        *,
        lifetime: float = JWT_LIFETIME,
        renew_before: float = JWT_RENEW_BEFORE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.subject = check_subject(subject)
        self.lifetime = lifetime
        self.renew_before = renew_before
        self._clock = clock
        self._k = key.public_key_b64url()
        self._cache: dict[str, tuple[str, float]] = {}  # origin -> (jwt, exp)
        self._lock = threading.Lock()

    def token(self, endpoint: str) -> str:
        """The JWT for `endpoint`'s origin (cached)."""
        return self.origin_token(origin(endpoint))

    def origin_token(self, aud: str) -> str:
        """The JWT for an origin as `origin` spells it (cached)."""
        now = self._clock()
        with self._lock:
            cached = self._cache.get(aud)
            if cached is not None and cached[1] - now > self.renew_before:
                return cached[0]
            exp = int(now + self.lifetime)
            claims = {"aud": aud, "exp": exp, "sub": self.subject}
            token = jwt.encode(claims, self.key.private_key, algorithm="ES256")
            self._cache[aud] = (token, float(exp))
            return token

    def origin_authorization(self, aud: str) -> str:
        return f"vapid t={self.origin_token(aud)}, k={self._k}"
