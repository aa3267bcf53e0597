"""Loading the core's configuration: the file's tables and the environment into ``Config``, checked."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path
from typing import Any

from retrieval.config.parse import Secret, build_section, coerce_value, env_section, read_config_file
from retrieval.config.rules import check_config, warn_unknown_environment
from retrieval.config.sections import SECTIONS, Config, FeedConfig
from retrieval.errors import ConfigError

__all__ = ["config_from", "load_config"]


def config_from(
    raw: dict[str, Any],
    file: Path | None,
    env: typing.Mapping[str, str],
    others: typing.Mapping[str, type] | None = None,
) -> Config:
    """Return the core's configuration from a config file's table, with environment overrides.

    Sections in ``others`` (name -> dataclass) belong to a front-end, which reads and checks them
    itself; any other key the core does not know is an error naming it. Every value is checked
    (``retrieval.config.rules``), and ``NEWSQA_*`` variables no section reads are warned about.
    """
    others = others or {}
    where = str(file) if file else "defaults"
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "data_dir":
            values["data_dir"] = coerce_value(value, str, "data_dir", where)
        elif key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: [{key}] must be a table")
            values[key] = build_section(SECTIONS[key], value, key, where)
        elif key == "feeds":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{where}: feeds must be written as [[feeds]] tables")
            values["feeds"] = tuple(build_section(FeedConfig, v, "feeds", where) for v in value)
        elif key not in others:
            raise ConfigError(f"{where}: unknown key {key!r}")
    config = Config(**values, source=str(file) if file else None)
    # Every value is checked now, not at the first question or the first article.
    warn_unknown_environment(env, others)
    return check_config(_apply_env(config, env))


def load_config(path: str | os.PathLike[str] | None = None, env: typing.Mapping[str, str] | None = None) -> Config:
    """Read the configuration file (if any) and apply environment overrides (the core's sections only)."""
    raw, file = read_config_file(path)
    return config_from(raw, file, os.environ if env is None else env)


def _apply_env(config: Config, env: typing.Mapping[str, str]) -> Config:
    changes: dict[str, Any] = {}
    if "NEWSQA_DATA_DIR" in env:
        changes["data_dir"] = env["NEWSQA_DATA_DIR"]
    for section in SECTIONS:
        current = getattr(config, section)
        updated = env_section(current, section, env)
        if updated is not current:
            changes[section] = updated
    if env.get("NEWSQA_PG_DSN"):
        # The one name deployments of PostgreSQL clients share; it wins over NEWSQA_STORAGE_DSN.
        storage = changes.get("storage", config.storage)
        changes["storage"] = dataclasses.replace(storage, dsn=Secret(env["NEWSQA_PG_DSN"]))
    return dataclasses.replace(config, **changes) if changes else config
