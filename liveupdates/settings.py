"""Settings: built-in defaults < config/liveupdates.toml < $LIVEUPDATES_CONFIG < environment.

(config/ is the checkout's; an installed package reads its own copy, liveupdates/defaults/.)

Every setting has one name. In a TOML file it sits in a table (`[fetch] total_timeout = 20`) or at the
top for the general ones (`data_dir = "./data"`); in the environment it is the same name in upper case
with the table as a prefix: `LIVEUPDATES_FETCH_TOTAL_TIMEOUT=20`, `LIVEUPDATES_DATA_DIR=/var/lib/lu`.
A bad value fails at start with one line naming the setting (SettingsError).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from liveupdates.netguard.hosts import split_entry
from liveupdates.netguard.policy import parse_networks

ENV_PREFIX = "LIVEUPDATES_"
# The defaults ship inside the package (liveupdates/defaults/, byte for byte the repository's
# documented config/, checked by tests/test_settings_files.py), so an installed wheel has them. A
# source checkout reads config/ itself, so editing it there acts as the README says.
PACKAGE_CONFIG_DIR = Path(__file__).resolve().parent / "defaults"
REPO_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def config_dir() -> Path:
    """Where the default settings and feeds files are: the checkout's config/, else the package's."""
    return (
        REPO_CONFIG_DIR if (REPO_CONFIG_DIR / "liveupdates.toml").is_file() else PACKAGE_CONFIG_DIR
    )


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range. The message names it."""


@dataclass(frozen=True)
class Settings:
    # general
    data_dir: str = "./data"
    redis_url: str | None = None
    # every Redis key starts with this, so tests and several deployments can share one Redis
    redis_prefix: str = "lu:"
    admin_token: str | None = None
    feeds_file: str | None = None  # None: config/feeds.toml (see config_dir)
    # named admin tokens {name: token}; only from a settings file
    admin_tokens: dict[str, str] = field(default_factory=dict)
    # Prometheus metrics of `worker` on their own port (on hub_host); 0: off. `web` and `serve`
    # serve /metrics on their HTTP port instead.
    metrics_port: int = 0
    # the service's public base URL (https://live.example.org): WebSub callbacks live under it;
    # None: WebSub is off and every feed is polled
    public_url: str | None = None

    # [poll]
    poll_min_interval: float = 2.0
    poll_max_interval: float = 86400.0
    poll_jitter: float = 0.1
    poll_max_backoff: float = 3600.0
    poll_flipflop_window: float = 600.0

    # [fetch]
    fetch_connect_timeout: float = 5.0
    fetch_total_timeout: float = 20.0
    fetch_max_body_bytes: int = 10 * 1024 * 1024
    fetch_max_redirects: int = 5
    # CIDR networks outbound requests may reach besides public addresses (intranet feeds)
    fetch_allow_networks: tuple[str, ...] = ()

    # [log]
    log_retention: int = 0  # entries kept per channel; 0 keeps all
    log_replay_cap: int = 500  # most updates replayed to one resuming client
    log_format: str = "text"  # process logs: "text" (human-readable) or "json" (one object a line)

    # [hub]
    hub_host: str = "127.0.0.1"
    hub_port: int = 8000
    # also serve /v1/ws with the `websockets` library's own server on this port; 0: off
    hub_ws_port: int = 0
    # /v1/ws upgrades on hub_port go to the `websockets` library's server protocol (the front door,
    # hub/frontdoor.py), everything else to uvicorn; false: all of it through uvicorn's ASGI app
    hub_ws_front_door: bool = True
    # bind hub_port with SO_REUSEPORT, so several `web` processes on one machine share the port
    # (the kernel spreads new connections over them; the bus carries updates between them)
    hub_reuse_port: bool = False
    hub_allowed_origins: tuple[str, ...] = ()  # empty: any origin
    hub_max_subscriptions: int = 100
    hub_send_queue: int = 256  # frames buffered per client before it is dropped
    hub_ping_interval: float = 20.0
    hub_ping_timeout: float = 20.0
    hub_max_message_bytes: int = 4096
    hub_rate_per_second: float = 20.0
    hub_rate_burst: int = 40
    hub_sse_heartbeat: float = 15.0
    # permessage-deflate costs 3-4x memory per connection (README, Benchmarks): off by default
    hub_ws_compression: bool = False
    hub_demo: bool = True  # serve the built-in demo feed at /demo/feed.xml
    hub_demo_step: float = 8.0  # seconds between the demo story's changes

    # [limits] anonymous load; per address = per client IP as the server sees it
    limits_connections: int = 100_000  # open WebSocket + SSE connections in one web process
    limits_connections_per_address: int = 5000
    limits_requests_per_second_per_address: float = 200.0  # public REST routes

    # [websub]
    # while a push subscription is active the feed is still polled this often (a safety net for
    # a hub that stopped sending), never faster than the feed's own interval
    websub_fallback_interval: float = 900.0
    websub_lease_seconds: int = 86400  # lease asked of hubs (they may grant another)

    # [push] device push (docs/push.md)
    # Web Push endpoint hosts a registration may name ("*.x" matches subdomains of x); an entry
    # "127.0.0.1:9000" (loopback address and port) also allows plain http there, for tests
    push_webpush_hosts: tuple[str, ...] = (
        "fcm.googleapis.com",
        "updates.push.services.mozilla.com",
        "*.push.apple.com",
        "*.notify.windows.com",
    )
    push_register_per_minute: int = 10  # POST /v1/devices per client address
    push_max_subscriptions: int = 200  # channels one device may follow
    push_device_ttl_days: float = 60.0  # forget devices without delivery or API call this long
    push_min_gap: float = 60.0  # seconds between notifications per device and story; 0: off
    push_max_attempts: int = 5  # sends of one notification before it is counted failed
    push_ttl: int = 86400  # seconds a push service keeps an undelivered notification
    push_scan_interval: float = 1.0  # seconds between looks at the followed channels' logs
    push_concurrency: int = 64  # sends in flight per dispatcher process
    push_vapid_private_key: str | None = None  # PEM; None: generated once, kept in the store
    push_vapid_subject: str | None = None  # mailto: or https: URL; None: public_url or a mailto
    push_apns_key_file: str | None = None  # .p8 token-signing key; APNs is off without it
    push_apns_key_id: str | None = None
    push_apns_team_id: str | None = None
    push_apns_topic: str | None = None  # the app's bundle id
    push_apns_url: str = "https://api.push.apple.com"
    push_apns_sandbox_url: str = "https://api.sandbox.push.apple.com"
    push_fcm_credentials_file: str | None = None  # service account JSON; FCM is off without it
    push_fcm_url: str = "https://fcm.googleapis.com"

    @property
    def sqlite_path(self) -> Path:
        return Path(self.data_dir) / "liveupdates.sqlite3"

    @property
    def feeds_path(self) -> Path:
        if self.feeds_file:
            return Path(self.feeds_file)
        return config_dir() / "feeds.toml"

    @property
    def retention(self) -> int | None:
        return self.log_retention or None

    @property
    def apns_configured(self) -> bool:
        return all(
            (
                self.push_apns_key_file,
                self.push_apns_key_id,
                self.push_apns_team_id,
                self.push_apns_topic,
            )
        )

    @property
    def fcm_configured(self) -> bool:
        return bool(self.push_fcm_credentials_file)

    @property
    def vapid_subject(self) -> str:
        if self.push_vapid_subject:
            return self.push_vapid_subject
        # VAPID wants a contact: the public https URL when there is one (an http one is not
        # accepted by push services), else a placeholder mailto.
        if self.public_url and self.public_url.startswith("https://"):
            return self.public_url
        return "mailto:push@liveupdates.invalid"


_FIELDS = {f.name: f for f in fields(Settings)}
_TABLES = ("poll", "fetch", "log", "hub", "limits", "websub", "push")
# Shorter admin tokens are refused at start: they can be guessed over the network.
MIN_ADMIN_TOKEN_LENGTH = 16


def _flatten(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if key in _TABLES and isinstance(value, Mapping):
            for sub, subvalue in value.items():
                flat[f"{key}_{sub}"] = subvalue
        else:
            flat[key] = value
    unknown = sorted(set(flat) - set(_FIELDS))
    if unknown:
        raise SettingsError(f"{source}: unknown setting {unknown[0]!r}")
    return flat


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _FIELDS[name].type
    where = f"{source}: setting {name}"
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(value)
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind == "tuple[str, ...]":
            if isinstance(value, str):
                return tuple(part.strip() for part in value.split(",") if part.strip())
            return tuple(str(part) for part in value)
        if kind == "dict[str, str]":
            if not isinstance(value, Mapping):
                raise ValueError(value)
            return {str(k): str(v) for k, v in value.items()}
        if kind == "str | None":
            return None if value in (None, "") else str(value)
        return str(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where} has a bad value {value!r} (expected {kind})") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"settings file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None


def _check(settings: Settings) -> Settings:
    if settings.poll_min_interval <= 0:
        raise SettingsError("setting poll_min_interval must be > 0")
    if settings.poll_max_interval < settings.poll_min_interval:
        raise SettingsError("setting poll_max_interval must be >= poll_min_interval")
    for name in ("fetch_connect_timeout", "fetch_total_timeout", "hub_ping_interval"):
        if getattr(settings, name) <= 0:
            raise SettingsError(f"setting {name} must be > 0")
    for name in (
        "fetch_max_body_bytes",
        "hub_send_queue",
        "hub_max_subscriptions",
        "hub_rate_burst",
        "limits_connections",
        "limits_connections_per_address",
        "push_register_per_minute",
        "push_max_subscriptions",
        "push_max_attempts",
        "push_concurrency",
        "push_ttl",
    ):
        if getattr(settings, name) < 1:
            raise SettingsError(f"setting {name} must be >= 1")
    try:
        parse_networks(settings.fetch_allow_networks)
    except ValueError as exc:
        raise SettingsError(f"setting fetch_allow_networks: {exc}") from None
    if not settings.limits_requests_per_second_per_address > 0:
        raise SettingsError("setting limits_requests_per_second_per_address must be > 0")
    tokens = {"admin_token": settings.admin_token or ""}
    tokens.update({f"admin_tokens.{k}": v for k, v in settings.admin_tokens.items()})
    for name, token in tokens.items():
        if token and len(token) < MIN_ADMIN_TOKEN_LENGTH:
            raise SettingsError(
                f"setting {name} is too short: admin tokens need at least"
                f" {MIN_ADMIN_TOKEN_LENGTH} characters (e.g. python3 -c"
                " 'import secrets; print(secrets.token_urlsafe(24))')"
            )
    if settings.log_retention < 0:
        raise SettingsError("setting log_retention must be >= 0 (0 keeps everything)")
    if not 1 <= settings.hub_port <= 65535:
        raise SettingsError("setting hub_port must be between 1 and 65535")
    if not 0 <= settings.metrics_port <= 65535:
        raise SettingsError("setting metrics_port must be between 0 (off) and 65535")
    if settings.log_format not in ("text", "json"):
        raise SettingsError('setting log_format must be "text" or "json"')
    if not 0 <= settings.hub_ws_port <= 65535:
        raise SettingsError("setting hub_ws_port must be between 0 (off) and 65535")
    if settings.redis_url and not settings.redis_url.startswith(
        ("redis://", "rediss://", "unix://")
    ):
        raise SettingsError("setting redis_url must start with redis://, rediss:// or unix://")
    if settings.public_url is not None and not settings.public_url.startswith(
        ("http://", "https://")
    ):
        raise SettingsError("setting public_url must start with http:// or https://")
    if settings.websub_fallback_interval <= 0:
        raise SettingsError("setting websub_fallback_interval must be > 0")
    if not 60 <= settings.websub_lease_seconds <= 365 * 86400:
        raise SettingsError("setting websub_lease_seconds must be between 60 and 31536000")
    for name in ("push_min_gap",):
        if getattr(settings, name) < 0:
            raise SettingsError(f"setting {name} must be >= 0 (0 turns it off)")
    for name in ("push_device_ttl_days", "push_scan_interval"):
        if not getattr(settings, name) > 0:
            raise SettingsError(f"setting {name} must be > 0")
    if not settings.push_webpush_hosts:
        raise SettingsError("setting push_webpush_hosts must name at least one host")
    for entry in settings.push_webpush_hosts:
        try:
            split_entry(entry)
        except ValueError as exc:
            raise SettingsError(f"setting push_webpush_hosts: {exc}") from None
    apns = (
        settings.push_apns_key_file,
        settings.push_apns_key_id,
        settings.push_apns_team_id,
        settings.push_apns_topic,
    )
    if any(apns) and not all(apns):
        raise SettingsError(
            "settings push_apns_key_file, push_apns_key_id, push_apns_team_id and"
            " push_apns_topic turn APNs on together: set all four or none"
        )
    subject = settings.push_vapid_subject
    if subject is not None and not subject.startswith(("mailto:", "https://")):
        raise SettingsError("setting push_vapid_subject must start with mailto: or https://")
    if "{" in settings.redis_prefix or "}" in settings.redis_prefix:
        # braces would act as a Redis Cluster hash tag and break the per-feed key layout
        raise SettingsError("setting redis_prefix must not contain '{' or '}'")
    return settings


# Variables read besides the settings: the settings file, the service's URL for processes that do
# not serve it (`worker`, `poll`, `feeds`), and the test suite's Redis.
OTHER_ENVIRONMENT = ("CONFIG", "URL", "TEST_REDIS_URL")


def env_name(name: str) -> str:
    """The environment variable of setting `name`."""
    return ENV_PREFIX + ("FEEDS" if name == "feeds_file" else name.upper())


def environment_names() -> set[str]:
    """Every `LIVEUPDATES_*` variable liveupdates reads."""
    names = {env_name(name) for name in _FIELDS if name != "admin_tokens"}
    return names | {ENV_PREFIX + name for name in OTHER_ENVIRONMENT}


def load_settings(
    environ: Mapping[str, str] | None = None, *, defaults_file: Path | None = None
) -> Settings:
    """Build the settings from files and environment. Raises SettingsError with one clear line."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    default_path = defaults_file or config_dir() / "liveupdates.toml"
    sources: list[Path] = [default_path] if default_path.exists() else []
    if env.get(f"{ENV_PREFIX}CONFIG"):
        sources.append(Path(env[f"{ENV_PREFIX}CONFIG"]))
    for path in sources:
        for name, value in _flatten(_read_toml(path), str(path)).items():
            values[name] = _coerce(name, value, str(path))
    for name in _FIELDS:
        if name == "admin_tokens":
            continue
        variable = env_name(name)
        if variable in env:
            values[name] = _coerce(name, env[variable], f"environment {variable}")
    return _check(Settings(**values))
