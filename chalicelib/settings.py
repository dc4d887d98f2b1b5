"""Limits and knobs of the chat service, read from environment variables.

Every limit is a setting so that a deployment (or a test) can change it in
`.chalice/config.json` without touching code. Defaults follow the protocol
documented in docs/protocol.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# API Gateway closes a connection after 2 hours; keep connection items a little
# longer so that a late $disconnect still finds them, then let TTL remove them.
DEFAULT_CONNECTION_TTL_SECONDS = 2 * 3600 + 15 * 60


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
    # The function that sends shares of big broadcasts (chalicelib/fanout.py); "" = none.
    fanout_function: str = ""
    fanout_batch: int = 250

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
            fanout_function=env.get("FANOUT_FUNCTION", cls.fanout_function).strip(),
            fanout_batch=positive_int(env, "FANOUT_BATCH", cls.fanout_batch),
        )


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
