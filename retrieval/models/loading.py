"""Loading the configured encoder, once per process: the torch or the ONNX runtime's."""

from __future__ import annotations

import threading
from pathlib import Path

from retrieval.config import ModelConfig
from retrieval.errors import ConfigError
from retrieval.models.encoder import Encoder, SentenceTransformerEncoder, quiet_hub

__all__ = ["load_encoder"]

_LOADED: dict[tuple[object, ...], Encoder] = {}
_LOADED_LOCK = threading.Lock()


def load_encoder(config: ModelConfig, threads: int | None = None, cache_dir: Path | None = None) -> Encoder:
    """Return the encoder the configuration names, loaded once per process."""
    n = config.query_threads if threads is None else threads
    if cache_dir is None and config.cache_dir:
        cache_dir = Path(config.cache_dir).expanduser()
    key = (config.name, config.backend, config.quantization, config.batch_size, str(cache_dir))
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = _build_encoder(config, n, cache_dir)
        encoder = _LOADED[key]
    encoder.set_threads(n)
    return encoder


def _build_encoder(config: ModelConfig, n: int, cache_dir: Path | None) -> Encoder:
    quiet_hub()
    if config.backend == "torch":
        if config.quantization != "none":
            raise ConfigError(f'model.quantize = {config.quantize!r} needs model.backend = "onnx"')
        return SentenceTransformerEncoder(config.name, config.batch_size, n)
    if config.backend == "onnx":
        try:
            from retrieval.models.onnx_encoder import OnnxEncoder
        except ImportError as exc:
            raise ConfigError(f'model.backend = "onnx" needs onnxruntime and tokenizers: {exc}') from None
        return OnnxEncoder.from_config(config, threads=n, cache_dir=cache_dir)
    raise ConfigError(f'model.backend must be "torch" or "onnx", not {config.backend!r}')
