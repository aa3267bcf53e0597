"""Every runtime dependency the code imports is declared, and the package imports in a venv made as the README says.

The second test builds a fresh virtual environment with the interpreter's own pip (no upgrade:
the machine's default pip 23.2 is the one that left trafilatura unable to import when
lxml_html_clean was not declared), installs the CPU torch first as the README says, then the
package with its postgres extra, and imports every module of retrieval/ and bot/ there.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("retrieval", "bot")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imported_top_levels() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES)


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    requirements += [r for name, extra in project["optional-dependencies"].items() if name != "dev" for r in extra]
    return {_normal(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requirements}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_imported_distribution_is_declared() -> None:
    owners = packages_distributions()
    declared = _declared()
    missing = {}
    for module in sorted(_imported_top_levels()):
        dists = {_normal(d) for d in owners.get(module, [])}
        assert dists, f"{module} is imported but no installed distribution provides it"
        if not dists & declared:
            missing[module] = sorted(dists)
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


def test_trafilatura_needs_lxml_html_clean_declared() -> None:
    """jusText (trafilatura's) imports lxml.html.clean, which lives in lxml_html_clean since lxml 5.2."""
    assert "lxml-html-clean" in _declared()


@pytest.mark.slow
@pytest.mark.timeout(1500)
@pytest.mark.skipif(os.environ.get("SKIP_NEWSQA_VENV_TEST") == "1", reason="SKIP_NEWSQA_VENV_TEST=1")
def test_every_module_imports_in_a_venv_made_as_the_readme_says(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}

    def pip(*args: str) -> None:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        errors = [line for line in done.stderr.splitlines() if "is ignored" not in line]
        assert done.returncode == 0, "\n".join(errors[-20:])

    # README: a CPU build of torch first (make install pins 2.13.0), then the package.
    pip("torch==2.13.0")
    pip("-e", f"{ROOT}[postgres]")
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
        "print('\\n'.join(failed))\n"
        "sys.exit(1 if failed else 0)\n"
    )
    modules = _modules()
    assert "retrieval.ingest.loaders" in modules and "bot.telegram.app" in modules and len(modules) > 40
    done = subprocess.run(
        [str(python), "-c", script, *modules], env=env, cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    # trafilatura is imported lazily by the loaders: use it the way an HTML ingest does.
    html = (ROOT / "tests" / "fixtures" / "article.html").read_text(encoding="utf-8")
    check = "import sys, trafilatura; print(bool(trafilatura.extract(sys.stdin.read())))"
    done = subprocess.run([str(python), "-c", check], env=env, input=html, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr[-3000:]
