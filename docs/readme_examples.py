"""Keep the README's example outputs what a user sees: run them on the bundled sample and compare.

An example is a fenced code block right after a line ``<!-- example -->``. Its first line is a
command, ``$ newsqa ...`` (no ``--data-dir``: the sample's data directory is used); the lines
under it are that command's standard output on the bundled sample articles (``bot/sample``).

    .venv/bin/python docs/readme_examples.py            # check: a diff and exit 1 when one drifted
    .venv/bin/python docs/readme_examples.py --write    # write the real outputs in (make docs)

``tests/test_readme_examples.py`` runs the check, so an example that no longer matches the program
(another title, outlet or date; a filter that matches no bundled article) fails the test suite.
Any Markdown file with such blocks works: pass its path.
"""

from __future__ import annotations

import argparse
import difflib
import shlex
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SAMPLE = ROOT / "bot" / "sample" / "articles"
MARKER = "<!-- example -->"
PROMPT = "$ "


@dataclass(frozen=True)
class Example:
    """One example block: the command and the output the file shows, and where they are."""

    command: str
    shown: str
    first: int  # index of the command's line in the file's lines
    last: int  # index of the closing fence


def find_examples(text: str) -> list[Example]:
    """Return the example blocks of a Markdown text, in order."""
    lines = text.split("\n")
    found: list[Example] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != MARKER:
            i += 1
            continue
        if i + 2 >= len(lines) or not lines[i + 1].startswith("```"):
            raise ValueError(f"line {i + 1}: {MARKER} must be followed by a fenced code block")
        end = next((j for j in range(i + 2, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"line {i + 2}: the example's code block is not closed")
        command = lines[i + 2]
        if not command.startswith(PROMPT + "newsqa "):
            raise ValueError(f"line {i + 3}: an example starts with '$ newsqa ...', not {command!r}")
        found.append(Example(command[len(PROMPT) :], "\n".join(lines[i + 3 : end]), i + 2, end))
        i = end + 1
    return found


def sample_runner(folder: Path) -> Callable[[str], str]:
    """Ingest the bundled sample into ``folder`` and return a function that runs a command on it."""
    from click.testing import CliRunner

    from bot.cli import cli

    config = folder / "config.toml"
    config.write_text("", encoding="utf-8")  # the defaults, whatever config.toml the caller has
    data = str(folder / "data")
    env = {"NEWSQA_CONFIG": str(config), "NEWSQA_DATA_DIR": data}
    ingested = CliRunner().invoke(cli, ["ingest", str(SAMPLE)], env=env)
    if ingested.exit_code != 0:
        raise RuntimeError(f"cannot ingest the sample: {ingested.output}")

    def run(command: str) -> str:
        argv = shlex.split(command)
        if argv[0] != "newsqa" or "--data-dir" in argv:
            raise ValueError(f"an example runs `newsqa ...` on the sample data, not {command!r}")
        result = CliRunner().invoke(cli, argv[1:], env=env)
        if result.exit_code != 0:
            raise RuntimeError(f"{command!r} failed ({result.exit_code}): {result.output}")
        return "\n".join(line.rstrip() for line in result.stdout.rstrip("\n").split("\n"))

    return run


def drifted(text: str, run: Callable[[str], str]) -> list[tuple[Example, str]]:
    """Return the examples whose shown output differs from the real one, with the real one."""
    return [(ex, real) for ex in find_examples(text) if (real := run(ex.command)) != ex.shown]


def rewrite(text: str, run: Callable[[str], str]) -> str:
    """Return ``text`` with every example's output replaced by the real one."""
    lines = text.split("\n")
    for ex in reversed(find_examples(text)):
        lines[ex.first + 1 : ex.last] = run(ex.command).split("\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Check (default) or rewrite the examples of a Markdown file."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", nargs="?", type=Path, default=README)
    parser.add_argument("--write", action="store_true", help="write the real outputs into the file")
    args = parser.parse_args(argv)
    text = args.path.read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory(prefix="newsqa-examples-") as folder:
        run = sample_runner(Path(folder))
        if args.write:
            new = rewrite(text, run)
            if new != text:
                args.path.write_text(new, encoding="utf-8")
            print(f"{args.path}: {len(find_examples(new))} examples written")
            return 0
        bad = drifted(text, run)
    for ex, real in bad:
        diff = difflib.unified_diff(ex.shown.split("\n"), real.split("\n"), "README", "real", lineterm="")
        print(f"$ {ex.command}\n" + "\n".join(diff), file=sys.stderr)
    if bad:
        print(f"{len(bad)} example(s) differ from the program: run `make docs`", file=sys.stderr)
        return 1
    print(f"{args.path}: {len(find_examples(text))} examples match the program")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
