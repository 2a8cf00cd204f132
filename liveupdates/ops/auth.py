"""Bearer tokens for the admin API. Pure apart from reading the request's header.

Tokens come from the settings: `admin_token` (LIVEUPDATES_ADMIN_TOKEN) is the token named "admin",
`[admin_tokens]` in a settings file adds named ones. The name is what the audit log records.
Without any token the admin API is closed (503), never open.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from liveupdates.settings import Settings

HOW_TO_SET = (
    "the admin API is disabled: no admin token is configured. Set LIVEUPDATES_ADMIN_TOKEN "
    "(or [admin_tokens] in the settings file) and restart the service"
)


class AuthError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def configured_tokens(settings: Settings) -> dict[str, str]:
    """{name: token}; empty tokens are ignored so an empty variable cannot open the API."""
    tokens = {name: token for name, token in settings.admin_tokens.items() if token}
    if settings.admin_token:
        tokens["admin"] = settings.admin_token
    return tokens


def token_name(tokens: Mapping[str, str], authorization: str | None) -> str:
    """The name of the token in an `Authorization: Bearer ...` header, or raise AuthError."""
    if not tokens:
        raise AuthError(503, "admin_disabled", HOW_TO_SET)
    scheme, _, presented = (authorization or "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise AuthError(401, "unauthorized", "missing bearer token (Authorization: Bearer <token>)")
    found: str | None = None
    given = presented.encode()
    # Compare against every token, without stopping at a match, so timing says nothing about
    # which token (or how much of one) matched.
    for name, token in tokens.items():
        if hmac.compare_digest(given, token.encode()) and found is None:
            found = name
    if found is None:
        raise AuthError(401, "unauthorized", "admin token refused")
    return found
