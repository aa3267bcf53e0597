"""The files an ``OnnxEncoder`` runs: the fp32 ONNX export of a sentence-transformers model, its int8
copy, and the cache they live in.

The export is made offline on first use from the model folder's weights (torch is imported only
then), checked against torch, and cached under ``<cache_dir>/<model>-<hash of weights>/`` with a
manifest; ``quantize = "int8"`` adds a dynamically quantized copy beside it (``plan_int8`` picks the
layers). Another process making the same files waits for this one (a lock file in the folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retrieval.atomic import write_atomic
from retrieval.errors import ConfigError
from retrieval.models.encoder import quiet_hub
from retrieval.models.onnx_int8 import INT8_RECIPE, int8_copy

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "EXPORT_VERSION",
    "ModelSpec",
    "default_cache_dir",
    "ensure_files",
    "load_tokenizer",
    "new_session",
    "read_spec",
    "safe_name",
    "weights_digest",
]

log = logging.getLogger(__name__)

# Bump when the export changes, so old cached files are not reused (it is part of the folder name).
EXPORT_VERSION = "1"
OPSET = 17
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
# An export whose hidden states differ from torch's by more than this is refused, not cached.
_EXPORT_TOLERANCE = 1e-3


def default_cache_dir() -> Path:
    """Return the per-user folder for exported models (``~/.cache/newsqa/models``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "newsqa" / "models"


@dataclass(frozen=True)
class ModelSpec:
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


def read_spec(location: str, name: str) -> ModelSpec:
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
    return ModelSpec(
        folder=folder,
        max_seq_length=max_len,
        do_lower_case=bool(st_config.get("do_lower_case", False)),
        dim=int(dim),
    )


def safe_name(name: str) -> str:
    base = Path(name.rstrip("/")).name or "model"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:60]


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def weights_digest(folder: Path, cache_dir: Path) -> str:
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


def _export_fp32(spec: ModelSpec, target: Path) -> None:
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
        session = new_session(tmp, threads=1)
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        # The exporter drops inputs the model never reads (token_type_ids for some models).
        feeds = {i.name: arrays[i.name].numpy() for i in session.get_inputs()}
        got = session.run(None, feeds)[0]
        diff = float(np.abs(got - expected)[mask.numpy().astype(bool)].max())
        if not diff < _EXPORT_TOLERANCE:
            raise ConfigError(f"the ONNX export of {spec.folder} disagrees with torch (max {diff})")
        log.info("exported %s (max difference from torch %.1e)", target, diff)

    _publish(target, write)


def _quantize_int8(source: Path, target: Path) -> None:
    """Write the int8 copy of ``source`` (``retrieval.models.onnx_int8``) to ``target``, with its manifest."""
    log.info("quantizing %s to int8 (once)", source)
    plan, write = int8_copy(source)
    _publish(target, write, recipe=INT8_RECIPE, quantized=len(plan.quantized), kept_fp32=len(plan.kept))
    log.info("int8: %d linear layers quantized, %d kept in fp32", len(plan.quantized), len(plan.kept))


def ensure_files(spec: ModelSpec, fp32: Path, target: Path, rebuild: bool = False) -> tuple[str, ...]:
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


def load_tokenizer(spec: ModelSpec) -> Tokenizer:
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


def new_session(path: Path, threads: int) -> Any:
    """Return an onnxruntime session of one file on ``threads`` intra-op threads (0: its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(threads, 0)
    options.inter_op_num_threads = 1
    # A spinning pool keeps cores busy after each call and slowed a following FAISS search 4×.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
