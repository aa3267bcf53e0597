"""The README's example outputs are the program's real output on the bundled sample (docs/readme_examples.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("readme_examples", ROOT / "docs" / "readme_examples.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


examples = _module()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    runner: Callable[[str], str] = examples.sample_runner(tmp_path_factory.mktemp("examples"))
    return runner


def test_every_readme_example_is_what_the_program_prints(run: Callable[[str], str]) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = examples.find_examples(text)
    assert len(found) >= 3
    bad = examples.drifted(text, run)
    assert bad == [], "README examples differ from the program; run `make docs`:\n" + "\n".join(
        f"$ {ex.command}\n--- README\n{ex.shown}\n--- real\n{real}" for ex, real in bad
    )


def test_a_filter_example_matches_a_bundled_article(run: Callable[[str], str]) -> None:
    for ex in examples.find_examples((ROOT / "README.md").read_text(encoding="utf-8")):
        if "source:" in ex.command and "norland" not in ex.command:
            assert not ex.shown.startswith("Not found"), ex.command


def test_a_drifted_example_is_caught_and_rewritten(run: Callable[[str], str]) -> None:
    text = (
        'Intro.\n\n<!-- example -->\n```\n$ newsqa ask -k 1 "How big is the asteroid Vella?"\n'
        "1. An old answer — Kestrel probe reaches asteroid Vella · Demo Daily Herald · 2025-06-18\n```\n\nEnd.\n"
    )
    [(example, real)] = examples.drifted(text, run)
    assert example.command.startswith("newsqa ask -k 1")
    assert "2.7 kilometres wide" in real and "Sample Times" in real
    fixed = examples.rewrite(text, run)
    assert examples.drifted(fixed, run) == []
    assert fixed.startswith("Intro.\n\n<!-- example -->\n```\n$ newsqa ask") and fixed.endswith("```\n\nEnd.\n")


def test_a_block_that_is_not_a_command_is_refused() -> None:
    with pytest.raises(ValueError, match="starts with"):
        examples.find_examples("<!-- example -->\n```\nnewsqa> How big is Vella?\n```\n")
