"""The front-ends' configuration: ``[telegram]``, ``[serve]`` and ``[log]``, beside the core's sections.

One config file holds both; ``load_app_config`` reads it once, the core building its sections
and this module the front-ends', each key overridable with ``NEWSQA_<SECTION>_<KEY>``. Every
front-end setting is checked here, at load, so a bad value is one clear line before anything
starts. The bot token never comes from the file: ``$NEWSQA_TELEGRAM_TOKEN`` or
``telegram.token_file``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from retrieval.config import Config, config_from
from retrieval.config.parse import Secret, build_section, env_section, read_config_file
from retrieval.config.rules import ANY, Rule, at_least, check_section, choice, interval, not_empty, web_url
from retrieval.errors import ConfigError

__all__ = [
    "FRONT_END_RULES",
    "FRONT_END_SECTIONS",
    "AppConfig",
    "LogConfig",
    "ServeConfig",
    "TelegramConfig",
    "check_app_config",
    "load_app_config",
]


@dataclass(frozen=True)
class TelegramConfig:
    """The Telegram front-end; the token comes from $NEWSQA_TELEGRAM_TOKEN or ``token_file``."""

    base_url: str = ""
    token_file: str = ""
    allowed_chats: tuple[int, ...] = ()
    allowed_users: tuple[int, ...] = ()
    admins: tuple[int, ...] = ()
    rate_limit: int = 20
    max_question_chars: int = 500
    # Characters of a passage shown around its marked sentence (the rest is cut at "…").
    quote_chars: int = 800
    # Link preview under answers: "off", or "first" to preview the first quote's article.
    link_preview: str = "off"
    # Quotes offered per page of inline results (@BotName question).
    inline_results: int = 5


@dataclass(frozen=True)
class ServeConfig:
    """The long-running service: how the bot receives updates, health, and re-reading the index."""

    # "polling" (long polling, the default) or "webhook".
    mode: str = "polling"
    # Webhook mode: the public https URL Telegram posts to; the server listens on listen:port
    # (behind a reverse proxy that terminates TLS) at the URL's path.
    webhook_url: str = ""
    listen: str = "127.0.0.1"
    port: int = 8443
    # The webhook's secret token comes from $NEWSQA_SERVE_SECRET_TOKEN or this file; if neither
    # is set a random one is made at each start (serve registers the webhook itself).
    secret_token_file: str = ""
    # HTTP GET /healthz on health_listen:health_port; 0 turns it off.
    health_listen: str = "127.0.0.1"
    health_port: int = 0
    # How often to look for articles written by another process (`newsqa ingest`).
    refresh_every: str = "30s"
    # Replicas on one store, polling mode: how often a standby tries to take over long polling
    # (only one replica may poll Telegram) and the poller checks that it still holds that role.
    takeover_every: str = "5s"


@dataclass(frozen=True)
class LogConfig:
    """Logging of the entry points."""

    level: str = "INFO"


@dataclass(frozen=True)
class AppConfig:
    """The whole configuration: the core's and the front-ends' sections."""

    core: Config = field(default_factory=Config)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def with_data_dir(self, data_dir: str) -> AppConfig:
        """Return this configuration with another data directory."""
        return dataclasses.replace(self, core=dataclasses.replace(self.core, data_dir=data_dir))

    def telegram_token(self) -> Secret | None:
        """Return the bot token from $NEWSQA_TELEGRAM_TOKEN or ``telegram.token_file``."""
        value = os.environ.get("NEWSQA_TELEGRAM_TOKEN", "").strip()
        if not value and self.telegram.token_file:
            path = Path(self.telegram.token_file).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read telegram.token_file {path}: {exc.strerror}") from None
        return Secret(value) if value else None


FRONT_END_SECTIONS: dict[str, type] = {"telegram": TelegramConfig, "serve": ServeConfig, "log": LogConfig}


def load_app_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> AppConfig:
    """Read the config file (if any) once, apply environment overrides, and check every setting."""
    env = os.environ if env is None else env
    raw, file = read_config_file(path)
    where = str(file) if file else "defaults"
    if "token" in raw.get("telegram", {}):
        raise ConfigError(
            f"{where}: the bot token must not be written in the config file; "
            "set NEWSQA_TELEGRAM_TOKEN or telegram.token_file"
        )
    core = config_from(raw, file, env, others=FRONT_END_SECTIONS)
    sections: dict[str, Any] = {}
    for name, cls in FRONT_END_SECTIONS.items():
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [{name}] must be a table")
        sections[name] = env_section(build_section(cls, table, name, where), name, env)
    config = AppConfig(core, **sections)
    check_app_config(config, where)
    return config


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# What each front-end setting may be (the core's are in retrieval/config/rules.py).
FRONT_END_RULES: dict[str, Rule] = {
    "telegram.base_url": web_url(empty=True),
    "telegram.token_file": ANY,
    "telegram.allowed_chats": ANY,
    "telegram.allowed_users": ANY,
    "telegram.admins": ANY,
    "telegram.rate_limit": at_least(0),
    "telegram.max_question_chars": at_least(1, 4096),
    "telegram.quote_chars": at_least(80, 4000),
    "telegram.link_preview": choice("off", "first"),
    "telegram.inline_results": at_least(1, 50),
    "log.level": Rule(lambda v: None if str(v).upper() in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}"),
    "serve.mode": choice("polling", "webhook"),
    "serve.webhook_url": Rule(
        lambda v: None if not v or urlsplit(str(v)).scheme == "https" else "must be an https:// URL or empty"
    ),
    "serve.listen": not_empty(),
    "serve.port": at_least(1, 65535),
    "serve.secret_token_file": ANY,
    "serve.health_listen": not_empty(),
    "serve.health_port": at_least(0, 65535),
    "serve.refresh_every": interval(),
    "serve.takeover_every": interval(),
}


def check_app_config(config: AppConfig, where: str | None = None) -> None:
    """Raise ConfigError naming the first front-end setting that cannot work."""
    where = where or config.core.source or "config"
    for name in FRONT_END_SECTIONS:
        check_section(where, name, getattr(config, name), FRONT_END_RULES)
