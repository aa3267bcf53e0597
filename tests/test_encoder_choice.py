"""A data directory keeps the encoder that built it when only the backend or quantization differ."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable

import pytest

from retrieval.config import Config, ModelConfig
from retrieval.errors import ConfigError, ModelMismatchError
from retrieval.ingest.loaders import make_article
from retrieval.models.loading import load_encoder
from retrieval.newsindex import NewsIndex

BRIDGE = make_article(
    "The council voted on Tuesday to build a footbridge over the river. "
    "The bridge will have 212 steps and a lift for wheelchairs. "
    "Work starts in the spring and should take two years.",
    url="https://example.org/bridge",
    title="River crossing approved",
    source="Example Gazette",
)
QUESTION = "How many steps will the bridge have?"
FERRY = make_article(
    "The harbour board approved a new ferry terminal that will cost 40 million pounds.",
    url="https://example.org/ferry",
    title="Ferry terminal approved",
)


def _with_model(config: Config, **model: str) -> Config:
    cache = os.environ["NEWSQA_MODEL_CACHE_DIR"]
    return dataclasses.replace(config, model=ModelConfig(cache_dir=cache, **model))


def _build(config: Config) -> None:
    with NewsIndex.open(config, encoder=load_encoder(config.model), create=True) as index:
        index.ingest([BRIDGE])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("built", "configured", "used"),
    [
        ({"quantize": "none"}, {"quantize": "int8"}, ("onnx", "none")),
        ({"quantize": "int8"}, {"quantize": "none"}, ("onnx", "int8")),
        # fp32 torch and fp32 ONNX share vectors: only the quantization is adopted, torch not loaded.
        ({"backend": "torch", "quantize": "none"}, {"quantize": "int8"}, ("onnx", "none")),
        ({"quantize": "int8"}, {"backend": "torch", "quantize": "none"}, ("onnx", "int8")),
        # The default (quantize = "auto", int8 with onnx) opens a directory built with fp32 as fp32.
        ({"quantize": "none"}, {}, ("onnx", "none")),
        ({"backend": "torch"}, {}, ("onnx", "none")),
    ],
)
def test_a_data_dir_keeps_its_own_backend_and_quantization(
    make_config: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
    built: dict[str, str],
    configured: dict[str, str],
    used: tuple[str, str],
) -> None:
    _build(_with_model(make_config(), **built))
    with caplog.at_level(logging.INFO, logger="retrieval.models.identity"):
        index = NewsIndex.open(_with_model(make_config(), **configured))
    with index:
        assert (index.config.model.backend, index.config.model.quantization) == used
        assert index.encoder.identity == f"all-MiniLM-L6-v2|{used[0]}|{used[1]}|384"
        answer = index.ask(QUESTION)
        assert answer.answered and "212 steps" in answer.quotes[0].text
        assert index.ingest([FERRY]).passages == 1  # written with the data dir's own encoder too
        assert str(index.backend.get_meta("encoder")).split("|")[2] == used[1]
    adopted = [r for r in caplog.records if "instead of the configured" in r.getMessage()]
    assert len(adopted) == 1 and adopted[0].levelno == logging.INFO


def test_auto_quantization_is_int8_on_onnx_and_none_on_torch() -> None:
    assert ModelConfig().quantize == "auto" and ModelConfig().quantization == "int8"
    assert ModelConfig(backend="torch").quantization == "none"
    assert ModelConfig(backend="onnx", quantize="none").quantization == "none"
    with pytest.raises(ConfigError, match=r"needs model\.backend"):
        load_encoder(ModelConfig(backend="torch", quantize="int8"))
    with pytest.raises(ConfigError, match="must be"):
        load_encoder(ModelConfig(backend="torch", quantize="fp16"))


@pytest.mark.slow
def test_the_same_encoder_logs_nothing(make_config: Callable[..., Config], caplog: pytest.LogCaptureFixture) -> None:
    config = _with_model(make_config(), quantize="int8")
    _build(config)
    with caplog.at_level(logging.INFO, logger="retrieval.models.identity"), NewsIndex.open(config) as index:
        assert index.config.model == config.model
    assert not [r for r in caplog.records if "instead of the configured" in r.getMessage()]


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_another_model_name_is_still_refused(make_config: Callable[..., Config], quantize: str) -> None:
    _build(_with_model(make_config(), quantize=quantize))
    other = _with_model(make_config(), name="some/other-model", quantize=quantize)
    with pytest.raises(ModelMismatchError, match="other-model"):
        NewsIndex.open(other)
