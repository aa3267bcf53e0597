"""An encoder run by onnxruntime on a local ONNX export of a sentence-transformers model.

The export is made offline on first use from the model folder's weights (torch is imported only
then) and cached under ``<cache_dir>/<model>-<hash of weights>/``; later processes load the cached
file with onnxruntime and tokenize with ``tokenizers``, without importing torch. ``quantize =
"int8"`` adds a dynamically quantized (per-channel int8) copy beside the fp32 export: passages are
encoded with it, questions still with the fp32 export (each session is loaded on first use).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.config import ModelConfig
from retrieval.errors import ConfigError
from retrieval.models.encoder import Encoder, embed_spans_alone, normalise_rows, resolve_model
from retrieval.models.onnx_files import (
    ModelSpec,
    default_cache_dir,
    ensure_files,
    load_tokenizer,
    new_session,
    read_spec,
    safe_name,
    weights_digest,
)
from retrieval.models.sentvecs import pool_spans, token_ranges

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

__all__ = ["OnnxEncoder"]

log = logging.getLogger(__name__)

# OnnxEncoder.embed sorts texts by token count within windows of this many batches.
_SORT_WINDOW_BATCHES = 32


class OnnxEncoder(Encoder):
    """An encoder run by onnxruntime on a cached ONNX export (fp32 or int8).

    With ``quantize = "int8"`` passages (``embed``, ``embed_passages``) go through the int8 copy
    and questions (``embed_queries``, ``embed_one``) through the fp32 export; each session is
    loaded on first use, so answering never loads the int8 file and ingesting never the fp32 one.
    """

    def __init__(
        self,
        name: str,
        spec: ModelSpec,
        model_path: Path,
        tokenizer: Tokenizer,
        quantize: str,
        threads: int,
        batch_size: int = 16,
        exported: tuple[str, ...] = (),
        query_path: Path | None = None,
        rebuild: Callable[[Path], tuple[str, ...]] | None = None,
    ) -> None:
        self.name = name
        self.spec = spec
        #: The file passages are encoded with (the int8 copy with quantize = "int8").
        self.model_path = model_path
        #: The file questions are encoded with: always an fp32 export.
        self.query_path = query_path if query_path is not None else model_path
        self.quantize = quantize
        self.dim = spec.dim
        self.batch_size = batch_size
        self.identity = f"{name}|onnx|{quantize}|{self.dim}"
        #: Which files this encoder had to build (empty when the cache was used).
        self.exported = exported
        self._tokenizer = tokenizer
        padding = tokenizer.padding or {}
        self._pad_id = int(padding.get("pad_id", 0))
        # Padding is done per batch in _forward, so one window of texts is tokenized only once.
        tokenizer.no_padding()
        self._threads = threads
        self._rebuild = rebuild
        # path -> (threads it was made with, session, its input names); made on first use.
        self._sessions: dict[Path, tuple[int, Any, frozenset[str]]] = {}
        self._sessions_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ModelConfig, threads: int, cache_dir: Path | None = None) -> OnnxEncoder:
        """Build the encoder, exporting and quantizing the model first if not cached."""
        quantize = config.quantization  # refuses an unknown value
        try:
            import onnxruntime  # noqa: F401
            import tokenizers  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f'model.backend = "onnx" needs onnxruntime and tokenizers: {exc}') from None
        spec = read_spec(resolve_model(config.name), config.name)
        cache = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            folder = cache / f"{safe_name(config.name)}-{weights_digest(spec.folder, cache)}"
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot use the model cache {cache}: {exc}") from None
        fp32 = folder / "model.onnx"
        target = fp32 if quantize == "none" else folder / "model.int8.onnx"
        exported = ensure_files(spec, fp32, target)
        if target != fp32:
            exported += ensure_files(spec, fp32, fp32)  # for questions; normally already there
        tokenizer = load_tokenizer(spec)

        def rebuild(path: Path) -> tuple[str, ...]:
            return ensure_files(spec, fp32, path, rebuild=True)

        encoder = cls(
            config.name,
            spec,
            target,
            tokenizer,
            quantize,
            threads,
            config.batch_size,
            exported,
            query_path=fp32,
            rebuild=rebuild,
        )
        if target == fp32:
            encoder._session(fp32)  # one file for everything: load it now, as torch would
        return encoder

    def set_threads(self, n: int) -> None:
        """Use ``n`` intra-op threads (0 = onnxruntime's default); sessions are remade on next use."""
        self._threads = n

    def loaded(self) -> tuple[Path, ...]:
        """Return the model files whose sessions are loaded."""
        return tuple(self._sessions)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Return the mean-pooled (not normalised) passage vectors of one batch."""
        return _mean_pool(*self._forward(self._tokenize(texts), self.model_path))

    def embed(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Return normalised passage vectors in input order; batches texts of similar token length."""
        return self._encode(texts, None, progress)[0]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Return normalised question vectors, from the fp32 export whatever ``quantize`` says."""
        return self._encode(texts, None, None, self.query_path)[0]

    def embed_passages(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        progress: Callable[[int], None] | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Return the texts' vectors and span vectors pooled from the same pass (see sentvecs)."""
        vectors, pooled = self._encode(texts, spans, progress)
        assert pooled is not None
        return vectors, pooled

    def _session(self, path: Path) -> tuple[Any, frozenset[str]]:
        """Return the session of ``path`` (made now if missing or made for another thread count)."""
        with self._sessions_lock:
            threads = self._threads
            entry = self._sessions.get(path)
            if entry is None or entry[0] != threads:
                self._sessions.pop(path, None)  # free the old one first
                session = self._load(path, threads)
                entry = (threads, session, frozenset(i.name for i in session.get_inputs()))
                self._sessions[path] = entry
            return entry[1], entry[2]

    def _load(self, path: Path, threads: int) -> Any:
        try:
            return new_session(path, threads)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            if path.name in self.exported or self._rebuild is None:
                raise ConfigError(f"cannot load the fresh ONNX export {path}: {exc}") from None
            log.warning("cached ONNX file %s is unusable (%s); rebuilding it", path, exc)
        self.exported += self._rebuild(path)
        try:
            return new_session(path, threads)
        except Exception as exc:
            raise ConfigError(
                f"cannot load the rebuilt ONNX file {path}: {exc}; delete {path.parent} and retry"
            ) from None

    def _encode(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]] | None,
        progress: Callable[[int], None] | None,
        path: Path | None = None,
    ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        path = self.model_path if path is None else path
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        pooled: list[np.ndarray] | None = None
        missing: list[list[bool]] = []
        if spans is not None:
            pooled = [np.zeros((len(s), self.dim), dtype=np.float32) for s in spans]
            missing = [[False] * len(s) for s in spans]
        # Batches of similar token counts cut padding: on 90-word news passages, 27% of the
        # tokens run were padding in input order, 4% sorted by tokens (6% less by characters).
        # A window bounds the memory held by tokenized texts.
        window = self.batch_size * _SORT_WINDOW_BATCHES
        for start in range(0, len(texts), window):
            encodings = self._tokenize(texts[start : start + window])
            order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
            for lo in range(0, len(order), self.batch_size):
                idx = order[lo : lo + self.batch_size]
                batch = [encodings[i] for i in idx]
                hidden, mask = self._forward(batch, path)
                out[[start + i for i in idx]] = _mean_pool(hidden, mask)
                if spans is not None and pooled is not None:
                    for row, i in enumerate(idx):
                        n = start + i
                        self._pool_row(texts[n], batch[row], hidden[row], spans[n], pooled[n], missing[n])
                if progress is not None:
                    progress(len(idx))
        normalise_rows(out)
        if spans is not None and any(any(m) for m in missing):
            # Spans cut off by truncation (or unmappable after lower-casing) are encoded alone.
            embed_spans_alone(self, texts, spans, missing, pooled)
        return out, pooled

    def _pool_row(
        self,
        text: str,
        encoding: Encoding,
        hidden: np.ndarray,
        spans: Sequence[tuple[int, int]],
        into: np.ndarray,
        missing: list[bool],
    ) -> None:
        if self.spec.do_lower_case and len(text.lower()) != len(text):
            # Offsets refer to the lower-cased text, which has another length: they cannot be mapped.
            missing[:] = [True] * len(spans)
            return
        vectors, empty = pool_spans(hidden, token_ranges(encoding.offsets, spans))
        into[:] = vectors
        missing[:] = empty.tolist()

    def _tokenize(self, texts: Sequence[str]) -> list[Encoding]:
        if self.spec.do_lower_case:
            texts = [t.lower() for t in texts]
        return list(self._tokenizer.encode_batch(list(texts)))

    def _forward(self, encodings: list[Encoding], path: Path) -> tuple[np.ndarray, np.ndarray]:
        """Return the token vectors ``(batch, tokens, dim)`` from ``path`` and the attention mask."""
        session, inputs = self._session(path)
        # Pad to the longest in this batch, as sentence-transformers does.
        width = max((len(e.ids) for e in encodings), default=0)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        types = np.zeros((len(encodings), width), dtype=np.int64)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = e.attention_mask
            types[row, :n] = e.type_ids
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in inputs:
            feeds["token_type_ids"] = types
        return np.asarray(session.run(None, feeds)[0]), mask


def _mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over real tokens only, as sentence-transformers' Pooling does."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.maximum(weights.sum(axis=1), 1e-9)
    return np.asarray(summed / counts, dtype=np.float32)
