"""Which stored vectors an encoder may search: a store keeps the identity of the encoder that built it.

Identities are ``name|backend|quantize|dim``. fp32 torch and fp32 ONNX runs of one model give
the same vectors (max difference 2e-7, identical top-10 in bench/bench_encoders.py), so they may
share an index; int8 passage vectors differ and never mix with fp32 ones. A store built with
another backend or quantization of the configured model keeps its own (the configuration's
default may have changed since it was built); another model is refused.
"""

from __future__ import annotations

import dataclasses
import logging

from retrieval.config import ModelConfig
from retrieval.errors import ModelMismatchError

__all__ = ["adopted_model", "identities_compatible", "identity_of"]

log = logging.getLogger(__name__)

# Stores (and the encoder settings adopted for them) already reported by adopted_model.
_ADOPTED: set[tuple[str, str, str]] = set()


def identity_of(model: ModelConfig) -> str:
    """Return the identity (without the dimension) of the encoder a configuration asks for."""
    return f"{model.name}|{model.backend}|{model.quantization}"


def identities_compatible(stored: str, wanted: str) -> bool:
    """Return True if vectors stored under ``stored`` can be searched with the encoder ``wanted``."""
    s, w = stored.split("|")[:3], wanted.split("|")[:3]
    if len(s) < 3 or len(w) < 3 or s[0] != w[0] or s[2] != w[2]:
        return False
    return s[1] == w[1] or (s[2] == "none" and {s[1], w[1]} <= {"torch", "onnx"})


def adopted_model(model: ModelConfig, stored: str | None, where: str, key: str | None = None) -> ModelConfig:
    """Return the encoder settings to use for the store at ``where`` built with ``stored``.

    ``key`` names the store for "reported once per process" (``where`` by default).

    The configured ones when compatible (or nothing is stored yet); the store's own backend and
    quantization of the same model otherwise; ModelMismatchError for another model.
    """
    if stored is None:
        return model
    expected = identity_of(model)
    if identities_compatible(stored, expected):
        return model
    name, backend, quant, dim = (stored.split("|") + ["?"] * 4)[:4]
    if name == model.name and backend in ("onnx", "torch") and quant in ("none", "int8"):
        adopted = dataclasses.replace(model, quantize=quant)
        if not identities_compatible(stored, f"{name}|{adopted.backend}|{quant}"):
            adopted = dataclasses.replace(adopted, backend=backend)
        seen = (key or where, stored, expected)
        if seen not in _ADOPTED:  # once per process, however often the store is opened
            _ADOPTED.add(seen)
            log.info(
                "%s was built with backend %s, quantize %s: using backend %s, quantize %s for it "
                "instead of the configured %s, %s",
                where,
                backend,
                quant,
                adopted.backend,
                adopted.quantize,
                model.backend,
                model.quantization,
            )
        return adopted
    raise ModelMismatchError(
        f"the index in {where} was built with model {name!r} (backend {backend}, "
        f"quantize {quant}, {dim} dimensions), but the configuration asks for "
        f"{model.name!r} (backend {model.backend}, quantize {model.quantization}); "
        "use that model or another data directory"
    )
