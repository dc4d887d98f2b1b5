"""Limits and knobs of the chat service, read from environment variables.

Every limit is a setting so that a deployment (or a test) can change it in
`.chalice/config.json` without touching code. Defaults follow the protocol
documented in docs/protocol.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from chalicelib.limits import Rate

# API Gateway closes a connection after 2 hours; keep connection items a little
# longer so that a late $disconnect still finds them, then let TTL remove them.
DEFAULT_CONNECTION_TTL_SECONDS = 2 * 3600 + 15 * 60

# Origins of the pages that may connect: the page opened from a file (its Origin is
# "null") and the local gateway's, on any port. Clients that send no Origin (wscat,
# SDKs) are always allowed: the check is against other websites, not other programs.
DEFAULT_ALLOWED_ORIGINS = ("null", "http://127.0.0.1:*", "http://localhost:*")


class SettingsError(ValueError):
    """An environment variable holds a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    table_name: str
    max_text_chars: int = 4000
    max_nick_chars: int = 32
    max_room_chars: int = 64
    history_page_size: int = 50
    history_retention_seconds: int = 7 * 86400
    connection_ttl_seconds: int = DEFAULT_CONNECTION_TTL_SECONDS
    presence_limit: int = 100
    default_room: str = "lobby"
    # Rooms a connection may be in at once (its own, and its person's).
    max_rooms: int = 100
    # The function that sends shares of big broadcasts (chalicelib/fanout.py); "" = none.
    fanout_function: str = ""
    fanout_batch: int = 250
    # Abuse limits: frames a connection may send (a person typing never meets them),
    # room changes, and open connections per source address.
    rate_per_second: int = 5
    rate_burst: int = 10
    joins_per_minute: int = 20
    connections_per_ip: int = 20
    allowed_origins: tuple[str, ...] = DEFAULT_ALLOWED_ORIGINS
    # AUTH: "none" (anyone with the URL, as a guest), "cognito" ($connect wants ?token=,
    # an access token of this user pool's app client; chalicelib/auth.py) or "optional"
    # (a valid token signs in, no token is a guest, a bad token is refused).
    auth: str = "optional"
    user_pool_id: str = ""
    client_id: str = ""
    # Attachments (chalicelib/attachments.py): the stage's bucket ("" = none), the largest
    # image (PNG, JPEG, GIF, WebP) and other file, how long presigned URLs live.
    bucket_name: str = ""
    max_image_bytes: int = 10 * 1024 * 1024
    max_file_bytes: int = 25 * 1024 * 1024
    upload_seconds: int = 300
    download_seconds: int = 300

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        table_name = env.get("TABLE_NAME", "").strip()
        if not table_name:
            raise SettingsError("TABLE_NAME is not set: the chat needs its DynamoDB table")
        return cls(
            table_name=table_name,
            max_text_chars=positive_int(env, "MAX_MESSAGE_CHARS", cls.max_text_chars),
            max_nick_chars=positive_int(env, "MAX_NICK_CHARS", cls.max_nick_chars),
            max_room_chars=positive_int(env, "MAX_ROOM_CHARS", cls.max_room_chars),
            history_page_size=positive_int(env, "HISTORY_PAGE_SIZE", cls.history_page_size),
            history_retention_seconds=86400
            * positive_int(env, "HISTORY_RETENTION_DAYS", cls.history_retention_seconds // 86400),
            connection_ttl_seconds=positive_int(
                env, "CONNECTION_TTL_SECONDS", cls.connection_ttl_seconds
            ),
            presence_limit=positive_int(env, "PRESENCE_LIMIT", cls.presence_limit),
            default_room=env.get("DEFAULT_ROOM", cls.default_room),
            max_rooms=positive_int(env, "MAX_ROOMS", cls.max_rooms),
            fanout_function=env.get("FANOUT_FUNCTION", cls.fanout_function).strip(),
            fanout_batch=positive_int(env, "FANOUT_BATCH", cls.fanout_batch),
            rate_per_second=positive_int(env, "RATE_PER_SECOND", cls.rate_per_second),
            rate_burst=positive_int(env, "RATE_BURST", cls.rate_burst),
            joins_per_minute=positive_int(env, "JOINS_PER_MINUTE", cls.joins_per_minute),
            connections_per_ip=positive_int(env, "CONNECTIONS_PER_IP", cls.connections_per_ip),
            allowed_origins=_origins(env.get("ALLOWED_ORIGINS")),
            **_auth(env),
            bucket_name=env.get("BUCKET_NAME", "").strip(),
            max_image_bytes=positive_int(env, "MAX_IMAGE_BYTES", cls.max_image_bytes),
            max_file_bytes=positive_int(env, "MAX_FILE_BYTES", cls.max_file_bytes),
            upload_seconds=positive_int(env, "UPLOAD_URL_SECONDS", cls.upload_seconds),
            download_seconds=positive_int(env, "DOWNLOAD_URL_SECONDS", cls.download_seconds),
        )

    @property
    def frame_rate(self) -> Rate:
        return Rate.per_second(self.rate_per_second, self.rate_burst)

    @property
    def join_rate(self) -> Rate:
        return Rate.per_minute(self.joins_per_minute, self.joins_per_minute)


AUTH_MODES = ("none", "cognito", "optional")


def _auth(env: Mapping[str, str]) -> dict[str, str]:
    mode = env.get("AUTH", "optional").strip().lower() or "optional"
    if mode not in AUTH_MODES:
        raise SettingsError(f"AUTH must be one of {', '.join(AUTH_MODES)}, got {mode!r}")
    settings = {
        "auth": mode,
        "user_pool_id": env.get("COGNITO_USER_POOL_ID", "").strip(),
        "client_id": env.get("COGNITO_CLIENT_ID", "").strip(),
    }
    # `optional` without a pool (a stage with no Cognito yet) admits guests only.
    if mode == "cognito" and not (settings["user_pool_id"] and settings["client_id"]):
        raise SettingsError("AUTH=cognito needs COGNITO_USER_POOL_ID and COGNITO_CLIENT_ID")
    return settings


def _origins(raw: str | None) -> tuple[str, ...]:
    """ALLOWED_ORIGINS: comma-separated origins; a port may be `*`; unset: the defaults."""
    if raw is None or not raw.strip():
        return DEFAULT_ALLOWED_ORIGINS
    return tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())


def positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    """The whole number in env[name], `default` when unset; SettingsError when unusable."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise SettingsError(f"{name} must be at least 1, got {value}")
    return value
