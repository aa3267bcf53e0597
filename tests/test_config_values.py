"""Every config value is checked when the config is loaded: one line naming the key and what it may be."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.config import FRONT_END_RULES, FRONT_END_SECTIONS, load_app_config
from retrieval.config import SECTIONS, FeedConfig, load_config
from retrieval.config.rules import FUSIONS, RULES, known_environment, warn_unknown_environment
from retrieval.errors import ConfigError


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[passages]\ntarget_words = 0", "passages.target_words must be from 1 to 10000, not 0"),
        ("[passages]\nmax_words = -3", "passages.max_words must be from 1 to 10000, not -3"),
        ("[passages]\ntarget_words = 90\nmax_words = 40", "passages.max_words must be at least passages.target_words"),
        ("[search]\nk = 0", "search.k must be from 1 to 50, not 0"),
        ("[search]\nfusion = 'dense+'", 'search.fusion must be one of "weighted", "rrf", "dense", "lexical"'),
        ("[search]\ndense_weight = 1.5", "search.dense_weight must be from 0 to 1, not 1.5"),
        ("[model]\nbatch_size = 0", "model.batch_size must be from 1 to 4096, not 0"),
        ("[model]\nbackend = 'tensorflow'", 'model.backend must be one of "onnx", "torch"'),
        ("[model]\nquantize = 'int4'", 'model.quantize must be one of "auto", "none", "int8"'),
        ("[index]\nquantize = 'pq'", 'index.quantize must be one of "sq4", "sq6", "sq8", "none"'),
        ("[serve]\nmode = 'push'", 'serve.mode must be one of "polling", "webhook"'),
        ("[serve]\nrefresh_every = 'often'", "serve.refresh_every must be seconds or a number with s, m, h or d"),
        ("[serve]\nhealth_port = 70000", "serve.health_port must be from 0 to 65535"),
        ("[telegram]\nlink_preview = 'all'", 'telegram.link_preview must be one of "off", "first"'),
        ("[telegram]\nbase_url = 'ftp://example.org/bot'", "telegram.base_url must be an http:// or https:// URL"),
        ("[log]\nlevel = 'LOUD'", "log.level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("[storage]\nbackend = 'mysql'", 'storage.backend must be one of "local", "postgres"'),
        ("[web]\ntimeout = 0", "web.timeout must be from 0.1 to 3600"),
        ("[[feeds]]\nurl = 'file:///etc/passwd'", "feed 1: url must be an http:// or https:// URL"),
        ("[[feeds]]\nurl = 'example.org/feed'", "feed 1: url must be an http:// or https:// URL"),
        ("[[feeds]]\nurl = 'https://example.org/f'\nevery = 'hourly'", "feed 1: every must be seconds"),
        (
            "[[feeds]]\nurl = 'https://example.org/f'\n[[feeds]]\nurl = 'https://example.org/f'",
            "feed 2 (https://example.org/f) is listed twice",
        ),
    ],
)
def test_a_value_that_cannot_work_is_refused_at_load(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_app_config(path, env={})  # the core's sections and the front-ends', checked in one place
    text = str(info.value)
    assert message in text and text.startswith(str(path)) and "\n" not in text


def test_environment_values_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"search\.k must be from 1 to 50, not 0"):
        load_config(None, env={"NEWSQA_SEARCH_K": "0"})


def test_every_key_has_a_rule() -> None:
    keys = {f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    keys |= {f"feeds.{f.name}" for f in dataclasses.fields(FeedConfig)} | {"data_dir"}
    assert keys == set(RULES)
    front = {f"{s}.{f.name}" for s, cls in FRONT_END_SECTIONS.items() for f in dataclasses.fields(cls)}
    assert front == set(FRONT_END_RULES)


def test_the_core_alone_checks_its_own_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[search]\nk = 0\n")
    with pytest.raises(ConfigError, match=r"search\.k must be from 1 to 50, not 0"):
        load_config(path, env={})


def test_fusions_agree_with_the_search() -> None:
    from retrieval.search.fusion import FUSIONS as SEARCH_FUSIONS

    assert FUSIONS == SEARCH_FUSIONS


def test_unknown_newsqa_variables_get_one_warning_each(caplog: pytest.LogCaptureFixture) -> None:
    env = {"NEWSQA_SEARCH_MIN_SCOR": "1.0", "NEWSQA_DATA_DIR": "/tmp/x", "HOME": "/root"}
    with caplog.at_level(logging.WARNING):
        assert warn_unknown_environment(env) == ["NEWSQA_SEARCH_MIN_SCOR"]
        warn_unknown_environment(env)  # once per process
    [record] = [r for r in caplog.records if "NEWSQA_SEARCH_MIN_SCOR" in r.getMessage()]
    assert record.getMessage() == (
        "ignoring the environment variable NEWSQA_SEARCH_MIN_SCOR: newsqa has no such setting;"
        " did you mean NEWSQA_SEARCH_MIN_SCORE?"
    )
    assert "NEWSQA_TELEGRAM_TOKEN" in known_environment() and "NEWSQA_INDEX_EF_SEARCH" in known_environment()


def test_cli_prints_the_config_error_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[passages]\ntarget_words = 0\nmax_words = -3\n")
    result = CliRunner().invoke(cli, ["--config", str(path), "--data-dir", str(tmp_path / "d"), "sources"])
    assert result.exit_code == 1
    assert result.stderr == f"newsqa: {path}: passages.target_words must be from 1 to 10000, not 0\n"


def test_cli_warns_about_an_unknown_variable(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["--data-dir", str(tmp_path / "d"), "sources"],
        env={"NEWSQA_SEARCH_KAY": "3", "NEWSQA_CONFIG": ""},
    )
    warnings = [line for line in result.stderr.splitlines() if "NEWSQA_SEARCH_KAY" in line]
    assert len(warnings) == 1 and "did you mean NEWSQA_SEARCH_K" in warnings[0]
