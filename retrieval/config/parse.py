"""Reading settings: the TOML file, its tables into section dataclasses, and ``NEWSQA_*`` overrides.

The generic part of configuration, used by the core (``retrieval.config``) for its sections and
by the front-ends (``bot/config.py``) for theirs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from retrieval.errors import ConfigError

__all__ = [
    "MIN_INTERVAL",
    "Secret",
    "build_section",
    "coerce_value",
    "env_section",
    "find_config_file",
    "parse_every",
    "read_config_file",
]


class Secret:
    """A string that never shows itself in a repr, str or log line."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; call only where it is sent to its one consumer."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


T = TypeVar("T")


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the config file to read: explicit, else $NEWSQA_CONFIG, else ./config.toml if present."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("NEWSQA_CONFIG")
    if env:
        return Path(env)
    local = Path("config.toml")
    return local if local.is_file() else None


def read_config_file(path: str | os.PathLike[str] | None = None) -> tuple[dict[str, Any], Path | None]:
    """Return the TOML table of the config file to read (see ``find_config_file``) and its path."""
    file = find_config_file(path)
    if file is None:
        return {}, None
    try:
        with open(file, "rb") as fh:
            return tomllib.load(fh), file
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None


def build_section(cls: type[T], table: dict[str, Any], section: str, where: str) -> T:
    """Return section ``cls`` built from its TOML table; an unknown key or a wrong type is an error."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown key {section}.{key!r}")
        kwargs[key] = coerce_value(value, hints[key], f"{section}.{key}", where)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: [{section}] {exc}") from None


def coerce_value(value: Any, kind: Any, name: str, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(kind) if a is not type(None)]
        return None if value is None else coerce_value(value, inner[0], name, where)
    if origin is tuple:
        item = typing.get_args(kind)[0]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: {name} must be a list")
        return tuple(coerce_value(v, item, name, where) for v in value)
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is Secret:
        if isinstance(value, str):
            return Secret(value)
    elif kind is str:
        if isinstance(value, str):
            return value
        if name.endswith(".every") and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # "every = 900" means seconds
    raise ConfigError(f"{where}: {name} must be {getattr(kind, '__name__', kind)}, got {value!r}")


def _parse_env(text: str, kind: Any, name: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
        origin = typing.get_origin(kind)
    try:
        if kind is str:
            return text
        if kind is Secret:
            return Secret(text)
        if kind is bool:
            lowered = text.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if origin is tuple:
            item = typing.get_args(kind)[0]
            parts = json.loads(text) if text.strip().startswith("[") else text.split(",")
            return tuple(_parse_env(str(p).strip(), item, name) for p in parts if str(p).strip())
    except ValueError:
        pass
    raise ConfigError(f"environment variable {name} has an unusable value")


def env_section(current: T, section: str, env: typing.Mapping[str, str]) -> T:
    """Return a section with its keys overridden by ``NEWSQA_<SECTION>_<KEY>`` variables."""
    hints = typing.get_type_hints(type(current))
    updates: dict[str, Any] = {}
    for f in dataclasses.fields(current):  # type: ignore[arg-type]
        var = f"NEWSQA_{section}_{f.name}".upper()
        if var in env:
            updates[f.name] = _parse_env(env[var], hints[f.name], var)
    return dataclasses.replace(current, **updates) if updates else current  # type: ignore[type-var]


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_EVERY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", re.I)
MIN_INTERVAL = 1.0


def parse_every(value: str | float, name: str = "every") -> float:
    """Return an interval in seconds from 900, "900", "30s", "15m", "1h" or "1d"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        found = _EVERY.fullmatch(str(value))
        if found is None:
            raise ConfigError(f'{name} must be seconds or a number with s, m, h or d (e.g. "15m"), got {value!r}')
        seconds = float(found.group(1)) * _UNITS[found.group(2).lower()]
    if seconds < MIN_INTERVAL:
        raise ConfigError(f"{name} must be at least {MIN_INTERVAL:g} second, got {value!r}")
    return seconds
