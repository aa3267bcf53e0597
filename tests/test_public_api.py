"""The core's public surface, and the one-way import rule bot -> retrieval."""

from __future__ import annotations

import subprocess
import sys

import retrieval


def test_all_is_sorted_and_complete() -> None:
    assert retrieval.__all__ == sorted(retrieval.__all__)
    for name in retrieval.__all__:
        assert hasattr(retrieval, name), name


def test_importing_retrieval_loads_no_front_end() -> None:
    code = (
        "import sys, retrieval, retrieval.newsindex, retrieval.service, retrieval.answering.pipeline;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('telegram','click','bot','tqdm')];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_retrieval_loads_no_model_runtime() -> None:
    """Fast start: torch and sentence-transformers load only when an encoder is built."""
    code = (
        "import sys, retrieval.newsindex;"
        "print([m for m in ('torch','sentence_transformers','faiss') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
