"""An encoder run by onnxruntime on a local ONNX export of a sentence-transformers model.

The export is made offline on first use from the model folder's weights (torch is imported only
then) and cached under ``<cache_dir>/<model>-<hash of weights>/``; later processes load the cached
file with onnxruntime and tokenize with ``tokenizers``, without importing torch. ``quantize =
"int8"`` adds a dynamically quantized (per-channel int8) copy beside the fp32 export: passages are
encoded with it, questions still with the fp32 export (each session is loaded on first use).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.atomic import write_atomic
from retrieval.config import ModelConfig
from retrieval.errors import ConfigError
from retrieval.models.encoder import Encoder, embed_spans_alone, normalise_rows, quiet_hub, resolve_model
from retrieval.models.sentvecs import pool_spans, token_ranges

if TYPE_CHECKING:
    from tokenizers import Encoding, Tokenizer

__all__ = ["Int8Plan", "OnnxEncoder", "default_cache_dir", "plan_int8"]

log = logging.getLogger(__name__)

# Bump when the export changes, so old cached files are not reused (it is part of the folder name).
EXPORT_VERSION = "1"
# Bump when the int8 recipe changes: a cached int8 copy made by another recipe is quantized again
# from the cached fp32 export (recorded in the copy's manifest; torch is not needed for it).
# 1: every quantizable op. 2: MatMul only, FFN down-projections and the first layer kept fp32.
# 3: as 2 with the first two layers kept fp32.
INT8_RECIPE = "3"
# Transformer layers kept whole in fp32 at the input end: the error of an int8 layer is carried
# and amplified by every layer after it, so the first layers matter most. Of three variants at
# the same cost (first two layers, first and last, first and every attention output projection)
# the first two kept the passage vectors closest to fp32 (cosine 0.9979 mean, 0.9964 at the 1st
# percentile over 1,500 news and SQuAD passages; docs/performance.md).
_FP32_LAYERS = 2
OPSET = 17
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
# An export whose hidden states differ from torch's by more than this is refused, not cached.
_EXPORT_TOLERANCE = 1e-3
# OnnxEncoder.embed sorts texts by token count within windows of this many batches.
_SORT_WINDOW_BATCHES = 32


def default_cache_dir() -> Path:
    """Return the per-user folder for exported models (``~/.cache/newsqa/models``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsqa" / "models"


@dataclass(frozen=True)
class _ModelSpec:
    """What the ONNX encoder needs to know about a sentence-transformers model folder."""

    folder: Path  # the Transformer module's folder: weights, config.json, tokenizer.json
    max_seq_length: int
    do_lower_case: bool
    dim: int


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the model folder lacks {path.name} ({path})") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """Return the pooling modes of a Pooling config, old (boolean keys) or new style."""
    mode = config.get("pooling_mode")
    if isinstance(mode, str):
        return (mode,)
    if isinstance(mode, list):
        return tuple(str(m) for m in mode)
    legacy = {
        "pooling_mode_cls_token": "cls",
        "pooling_mode_max_tokens": "max",
        "pooling_mode_mean_tokens": "mean",
        "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens": "weightedmean",
        "pooling_mode_lasttoken": "lasttoken",
    }
    modes = tuple(m for key, m in legacy.items() if config.get(key))
    return modes or ("mean",)  # sentence-transformers' own default


def _read_spec(location: str, name: str) -> _ModelSpec:
    """Read modules.json and the module configs; refuse what this backend cannot reproduce."""
    root = Path(location)
    if not root.is_dir():
        raise ConfigError(
            f'model.backend = "onnx" needs a local model folder; {name!r} is not one '
            "(use the packaged default or a folder saved by sentence-transformers)"
        )
    modules = _read_json(root / "modules.json")
    if not isinstance(modules, list):
        raise ConfigError(f"{root / 'modules.json'} is not a list of modules")
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    allowed = ["Transformer", "Pooling"]
    if kinds not in (allowed, [*allowed, "Normalize"]):
        raise ConfigError(
            f"model {name!r} has modules {kinds}; the onnx backend supports only "
            'Transformer, Pooling and optionally Normalize (use model.backend = "torch")'
        )
    folder = root / str(modules[0].get("path", ""))
    pooling = _read_json(root / str(modules[1].get("path", "")) / "config.json")
    modes = _pooling_modes(pooling)
    if modes != ("mean",):
        raise ConfigError(
            f"model {name!r} uses pooling {list(modes)}; the onnx backend supports only mean "
            'pooling (use model.backend = "torch")'
        )
    st_config_path = folder / "sentence_bert_config.json"
    st_config = _read_json(st_config_path) if st_config_path.exists() else {}
    hf_config = _read_json(folder / "config.json")
    max_positions = int(hf_config.get("max_position_embeddings", 512))
    max_len = st_config.get("max_seq_length")
    if max_len is None:
        tok_config_path = folder / "tokenizer_config.json"
        tok_config = _read_json(tok_config_path) if tok_config_path.exists() else {}
        max_len = tok_config.get("model_max_length", max_positions)
    # sentence-transformers caps the length at the position table too.
    max_len = min(int(max_len), max_positions)
    dim = pooling.get("word_embedding_dimension") or hf_config.get("hidden_size")
    if not dim:
        raise ConfigError(f"model {name!r} does not state its embedding dimension")
    return _ModelSpec(
        folder=folder,
        max_seq_length=max_len,
        do_lower_case=bool(st_config.get("do_lower_case", False)),
        dim=int(dim),
    )


def _safe_name(name: str) -> str:
    base = Path(name.rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:60]


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _weights_digest(folder: Path, cache_dir: Path) -> str:
    """Return a hash of the model's weights and config, memoised by file size and mtime."""
    files = sorted({p for pattern in _WEIGHT_PATTERNS for p in folder.glob(pattern)})
    if not files:
        raise ConfigError(f"no model weights (*.safetensors or pytorch_model.bin) in {folder}")
    memo_path = cache_dir / "weight-digests.json"
    try:
        memo: dict[str, Any] = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    # Hashing 90 MB costs about 0.12 s on every start; the memo keeps the start fast.
    changed = False
    total = hashlib.sha256(f"export-v{EXPORT_VERSION}-opset{OPSET}".encode())
    for path in [folder / "config.json", *files]:
        stat = path.stat()
        key = str(path.resolve())
        entry = memo.get(key)
        if not (
            isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns
        ):
            entry = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _sha256(path)}
            memo[key] = entry
            changed = True
        total.update(f"{path.name}:{entry['sha256']}\n".encode())
    if changed:
        with contextlib.suppress(OSError):  # a lost memo only costs a re-hash next time
            _write_bytes_atomic(memo_path, json.dumps(memo, indent=1).encode())
    return total.hexdigest()[:16]


def _write_bytes_atomic(target: Path, data: bytes) -> None:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    write_atomic(target, write)


def _publish(target: Path, write: Callable[[Path], None], **extra: object) -> None:
    """Write a cache file atomically, then the manifest that marks it complete."""
    write_atomic(target, write)
    manifest = {
        "size": target.stat().st_size,
        "sha256": _sha256(target),  # kept for diagnosis; loading checks only the size
        "created": time.time(),
        "version": EXPORT_VERSION,
        **extra,
    }
    _write_bytes_atomic(_manifest_path(target), json.dumps(manifest).encode())


def _manifest_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _is_complete(target: Path, recipe: str | None = None) -> bool:
    """Tell whether a cached file exists with the size (and recipe) its manifest recorded (cheap check)."""
    try:
        manifest = json.loads(_manifest_path(target).read_text(encoding="utf-8"))
        if recipe is not None and manifest.get("recipe") != recipe:
            return False
        return bool(target.stat().st_size == manifest["size"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


@contextlib.contextmanager
def _export_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock so that racing processes export once, not in parallel."""
    try:
        import fcntl
    except ImportError:  # not POSIX: atomic renames alone keep the cache consistent
        yield
        return
    with open(folder / ".lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _export_fp32(spec: _ModelSpec, target: Path) -> None:
    """Export the Transformer module to ONNX with dynamic batch and sequence axes."""
    quiet_hub()
    try:
        import torch
        from transformers import AutoModel
    except ImportError as exc:
        raise ConfigError(f"exporting to ONNX needs torch and transformers: {exc}") from None

    log.info("exporting %s to ONNX (once; takes about 10 s)", spec.folder)
    try:
        # Eager attention traces to plain ONNX ops; the SDPA path has data-dependent shortcuts.
        model = AutoModel.from_pretrained(str(spec.folder), local_files_only=True, attn_implementation="eager")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load {spec.folder} for export: {exc}") from None
    model.eval()

    class _Hidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    # Trace with a padded row so no "mask is all ones" shortcut gets frozen into the graph.
    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0]])
    mask = (ids != 0).to(torch.int64)
    types = torch.zeros_like(ids)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}

    with torch.no_grad():
        # Computed before tracing: the traced module's later eager outputs were seen to drift.
        expected = _Hidden(model)(ids, mask, types).numpy()

    def write(tmp: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is deprecated and chatty; the dynamo exporter needs
            # onnxscript, which is not installed, and the traced graph is checked below.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Hidden(model),
                (ids, mask, types),
                str(tmp),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        session = _new_session(tmp, threads=1)
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        # The exporter drops inputs the model never reads (token_type_ids for some models).
        feeds = {i.name: arrays[i.name].numpy() for i in session.get_inputs()}
        got = session.run(None, feeds)[0]
        diff = float(np.abs(got - expected)[mask.numpy().astype(bool)].max())
        if not diff < _EXPORT_TOLERANCE:
            raise ConfigError(f"the ONNX export of {spec.folder} disagrees with torch (max {diff})")
        log.info("exported %s (max difference from torch %.1e)", target, diff)

    _publish(target, write)


@dataclass(frozen=True)
class Int8Plan:
    """Which MatMul nodes of an export the int8 recipe quantizes and which it keeps in fp32."""

    quantized: tuple[str, ...]
    kept: tuple[str, ...]  # the first _FP32_LAYERS layers' and every FFN down-projection
    layers: int  # FFN down-projections found, one per transformer layer


def plan_int8(model: Any) -> Int8Plan:
    """Choose the MatMuls to quantize in ``model`` (an ``onnx.ModelProto``; unnamed nodes get names).

    Found by structure, not by name: a MatMul with a constant 2-D weight is a linear layer, one
    whose weight has more rows than columns (intermediate size to hidden size) is an FFN
    down-projection, the last linear layer of each transformer layer; the first ``_FP32_LAYERS``
    layers are every linear layer up to and including that many down-projections (ONNX graphs
    are in topological order). The FFN down-projections take the GELU output, whose outliers
    int8 activations clip: keeping them and the first layer in fp32 kept 0.929 of fp32's top-10
    where quantizing all kept 0.886 (docs/performance.md). A graph without a down-projection gets
    every linear layer quantized.
    """
    graph = model.graph
    for n, node in enumerate(graph.node):
        if not node.name:
            node.name = f"newsqa_node_{n}"
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    linear: list[tuple[str, tuple[int, ...]]] = [
        (node.name, shapes[node.input[1]])
        for node in graph.node
        if node.op_type == "MatMul" and len(node.input) == 2 and len(shapes.get(node.input[1], ())) == 2
    ]
    down = [name for name, (rows, cols) in linear if rows > cols]
    if not down:
        log.warning("no FFN down-projection found in the ONNX graph; quantizing every linear layer")
        return Int8Plan(tuple(name for name, _ in linear), (), 0)
    last_kept = down[min(_FP32_LAYERS, len(down)) - 1]
    first_layers = next(i for i, (name, _) in enumerate(linear) if name == last_kept)
    keep = {name for name, _ in linear[: first_layers + 1]} | set(down)
    return Int8Plan(
        tuple(name for name, _ in linear if name not in keep),
        tuple(name for name, _ in linear if name in keep),
        len(down),
    )


def _quantize_int8(source: Path, target: Path) -> None:
    """Write a dynamically quantized copy: int8 weights per channel, MatMuls of ``plan_int8`` only."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ConfigError(f'model.quantize = "int8" needs the onnx package: {exc}') from None
    log.info("quantizing %s to int8 (once)", source)
    model = onnx.load(str(source))
    plan = plan_int8(model)

    def write(tmp: Path) -> None:
        if not plan.quantized:  # an empty list would mean "every node" to the quantizer
            onnx.save(model, str(tmp))
            return
        with warnings.catch_warnings(), _quiet_root_logger():
            warnings.simplefilter("ignore")
            # Top-1 agreement with fp32 measured here: per-tensor 0.63, per-channel 0.83.
            quantize_dynamic(
                model,
                str(tmp),
                per_channel=True,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
                nodes_to_quantize=list(plan.quantized),
            )

    _publish(target, write, recipe=INT8_RECIPE, quantized=len(plan.quantized), kept_fp32=len(plan.kept))
    log.info("int8: %d linear layers quantized, %d kept in fp32", len(plan.quantized), len(plan.kept))


class _DropQuantizerInfo(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if "quantization" not in record.pathname:
            return True
        # Its advice to pre-process the model (shape inference) is for static quantization.
        return record.levelno >= logging.WARNING and "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """Drop the quantizer's per-tensor INFO lines and its pre-processing hint (on the root logger)."""
    root = logging.getLogger()
    quiet = _DropQuantizerInfo()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def _new_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(threads, 0)
    options.inter_op_num_threads = 1
    # A spinning pool keeps cores busy after each call and slowed a following FAISS search 4×.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEncoder(Encoder):
    """An encoder run by onnxruntime on a cached ONNX export (fp32 or int8).

    With ``quantize = "int8"`` passages (``embed``, ``embed_passages``) go through the int8 copy
    and questions (``embed_queries``, ``embed_one``) through the fp32 export; each session is
    loaded on first use, so answering never loads the int8 file and ingesting never the fp32 one.
    """

    def __init__(
        self,
        name: str,
        spec: _ModelSpec,
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
        spec = _read_spec(resolve_model(config.name), config.name)
        cache = (cache_dir if cache_dir is not None else default_cache_dir()).expanduser()
        try:
            cache.mkdir(parents=True, exist_ok=True)
            folder = cache / f"{_safe_name(config.name)}-{_weights_digest(spec.folder, cache)}"
            folder.mkdir(exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot use the model cache {cache}: {exc}") from None
        fp32 = folder / "model.onnx"
        target = fp32 if quantize == "none" else folder / "model.int8.onnx"
        exported = _ensure_files(spec, fp32, target)
        if target != fp32:
            exported += _ensure_files(spec, fp32, fp32)  # for questions; normally already there
        tokenizer = _load_tokenizer(spec)

        def rebuild(path: Path) -> tuple[str, ...]:
            return _ensure_files(spec, fp32, path, rebuild=True)

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
            return _new_session(path, threads)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            if path.name in self.exported or self._rebuild is None:
                raise ConfigError(f"cannot load the fresh ONNX export {path}: {exc}") from None
            log.warning("cached ONNX file %s is unusable (%s); rebuilding it", path, exc)
        self.exported += self._rebuild(path)
        try:
            return _new_session(path, threads)
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


def _ensure_files(spec: _ModelSpec, fp32: Path, target: Path, rebuild: bool = False) -> tuple[str, ...]:
    """Make sure the fp32 export (and the int8 copy of this recipe when wanted) exist; return what was built."""
    recipe = None if target == fp32 else INT8_RECIPE
    if not rebuild and _is_complete(target, recipe):
        return ()
    built: list[str] = []
    with _export_lock(fp32.parent):
        # Another process may have finished the work while this one waited for the lock.
        if (rebuild and target == fp32) or not _is_complete(fp32):
            _export_fp32(spec, fp32)
            built.append(fp32.name)
        if target != fp32 and (rebuild or built or not _is_complete(target, recipe)):
            try:
                _quantize_int8(fp32, target)
            except ConfigError:
                raise
            except Exception as exc:  # the quantizer's own errors: most likely a damaged fp32
                if built:
                    raise ConfigError(f"cannot quantize {fp32}: {exc}") from None
                log.warning("cannot quantize %s (%s); exporting it again", fp32, exc)
                _export_fp32(spec, fp32)
                built.append(fp32.name)
                _quantize_int8(fp32, target)
            built.append(target.name)
    return tuple(built)


def _load_tokenizer(spec: _ModelSpec) -> Tokenizer:
    from tokenizers import Tokenizer

    path = spec.folder / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for missing or bad files
        raise ConfigError(f"cannot read the fast tokenizer {path}: {exc}") from None
    # tokenizer.json may carry truncation at 128 from its export; sentence-transformers
    # truncates at max_seq_length (the padding it also carries is replaced in OnnxEncoder).
    tokenizer.enable_truncation(max_length=spec.max_seq_length)
    return tokenizer
