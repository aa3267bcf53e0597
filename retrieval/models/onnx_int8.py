"""The int8 recipe: which linear layers of an ONNX export are quantized, and the quantized copy itself.

Passages are encoded by the copy; questions by the fp32 export (``retrieval.models.onnx_encoder``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval.errors import ConfigError

__all__ = ["INT8_RECIPE", "Int8Plan", "int8_copy", "plan_int8"]

log = logging.getLogger(__name__)

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


def int8_copy(source: Path) -> tuple[Int8Plan, Callable[[Path], None]]:
    """Return the plan for ``source`` and a writer of its dynamically quantized copy: int8 weights per
    channel, the MatMuls of ``plan_int8`` only."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ConfigError(f'model.quantize = "int8" needs the onnx package: {exc}') from None
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

    return plan, write


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
