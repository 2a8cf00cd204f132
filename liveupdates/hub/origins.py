"""Browser Origin checks for /v1/ws and /v1/sse. Pure."""

from __future__ import annotations

from collections.abc import Iterable


def normalise_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


class OriginPolicy:
    """Empty allow-list: any origin. Requests without an Origin header (non-browser clients) pass:
    the check protects readers' browsers from other sites, it is not authentication."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(normalise_origin(o) for o in allowed if o.strip())

    def allows(self, origin: str | None) -> bool:
        if not self.allowed or origin is None:
            return True
        return "*" in self.allowed or normalise_origin(origin) in self.allowed
