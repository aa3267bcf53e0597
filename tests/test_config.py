"""Configuration: TOML into dataclasses, env overrides, unknown keys named, the token kept secret."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import AppConfig, TelegramConfig, load_app_config
from retrieval.config import Config, Secret, load_config
from retrieval.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_the_example_config_loads_and_equals_the_defaults() -> None:
    config = load_app_config(EXAMPLE, env={})
    assert config.core.model == Config().model
    assert config.core.search == Config().search
    assert config.core.passages == Config().passages
    assert config.core.web == Config().web
    assert config.core.index == Config().index
    assert config.core.storage == Config().storage
    assert config.telegram == TelegramConfig()
    assert (config.serve, config.log) == (AppConfig().serve, AppConfig().log)


def test_environment_overrides_single_keys(tmp_path: Path) -> None:
    env = {
        "NEWSQA_DATA_DIR": str(tmp_path),
        "NEWSQA_SEARCH_MIN_SCORE": "0.5",
        "NEWSQA_TELEGRAM_ADMINS": "1,2",
        "NEWSQA_WEB_ALLOW_PRIVATE_NETWORKS": "true",
    }
    config = load_app_config(EXAMPLE, env=env)
    assert config.core.data_dir == str(tmp_path)
    assert config.core.search.min_score == 0.5
    assert config.telegram.admins == (1, 2)
    assert config.core.web.allow_private_networks is True


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("colour = 1", "unknown key 'colour'"),
        ("[search]\nkay = 3", "unknown key search.'kay'"),
        ("[search]\nk = 'three'", "search.k must be int"),
        ("[telegram]\ntoken = '123:abc'", "must not be written in the config file"),
        ("[search\n", "not valid TOML"),
        ("[telegram]\nlink_preview = 'all'", "telegram.link_preview"),
        ("[serve]\nrefresh_every = 'often'", "serve.refresh_every"),
        ("[log]\nlevel = 'LOUD'", "log.level"),
        ("[serve]\nmode = 'pigeon'", "serve.mode"),
    ],
)
def test_bad_config_is_one_clear_error(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
        load_app_config(path, env={})
    assert "123:abc" not in str(info.value)


def test_the_core_alone_refuses_a_front_ends_section(tmp_path: Path) -> None:
    """The core reads its own sections; the front-ends' are read by bot.config, from the same file."""
    path = tmp_path / "c.toml"
    path.write_text("[telegram]\nrate_limit = 5\n")
    with pytest.raises(ConfigError, match="unknown key 'telegram'"):
        load_config(path, env={})
    assert load_app_config(path, env={}).telegram.rate_limit == 5


def test_token_comes_from_env_or_file_and_never_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("999:SECRET-TOKEN\n")
    path = tmp_path / "c.toml"
    path.write_text(f'[telegram]\ntoken_file = "{token_file}"\n')
    monkeypatch.delenv("NEWSQA_TELEGRAM_TOKEN", raising=False)
    config = load_app_config(path, env={})
    secret = config.telegram_token()
    assert isinstance(secret, Secret) and secret.reveal() == "999:SECRET-TOKEN"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("config %r token %s", config, secret)
    assert "SECRET-TOKEN" not in repr(config) + str(secret) + caplog.text
    monkeypatch.setenv("NEWSQA_TELEGRAM_TOKEN", "111:FROM-ENV")
    env_secret = config.telegram_token()
    assert env_secret is not None and env_secret.reveal() == "111:FROM-ENV"


def test_choosing_torch_alone_turns_the_default_int8_off(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[model]\nbackend = "torch"\n')
    assert load_config(path, env={}).model.quantization == "none"
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty, env={"NEWSQA_MODEL_BACKEND": "torch"}).model.quantization == "none"
    assert load_config(empty, env={}).model.quantization == "int8"
