"""The REPL in a real pseudo-terminal: questions, : commands, Ctrl-C keeps it alive, Ctrl-D leaves."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from .conftest import SAMPLE


def _controlling_tty() -> None:
    """Make the pty the child's controlling terminal, so that Ctrl-C there means SIGINT."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A process on a pty, read until an expected string appears."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True, preexec_fn=_controlling_tty
        )
        os.close(slave)
        self.buffer = ""

    def expect(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.buffer:
            left = deadline - time.monotonic()
            assert left > 0, f"did not see {text!r}; screen so far:\n{self.buffer[-2000:]}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if ready:
                try:
                    self.buffer += os.read(self.master, 65536).decode("utf-8", "replace")
                except OSError:
                    break
        assert text in self.buffer, self.buffer[-2000:]
        seen, self.buffer = self.buffer.split(text, 1)
        return seen + text

    def send(self, keys: str) -> None:
        os.write(self.master, keys.encode())


@pytest.mark.slow
def test_repl_answers_and_obeys_its_commands(tmp_path: Path) -> None:
    env = {**os.environ, "NEWSQA_HISTORY": str(tmp_path / "history"), "TERM": "dumb"}
    term = Terminal([sys.executable, "-m", "bot.cli", "--data-dir", str(tmp_path / "d"), "repl", "--sample"], env)
    try:
        term.expect("10 articles")
        term.expect("newsqa> ")

        def say(line: str) -> str:
            term.send(line + "\n")
            return term.expect("newsqa> ")

        assert ":sources" in say(":help")
        answer = say("How far did the Kestrel probe travel?")
        assert "4.1 billion kilometres" in answer and "#:~:text=" in answer
        assert "showing 1 quote per answer" in say(":k 1")
        one = say("Who won the mayoral election in Aldermoor?")
        assert "1." in one and "\n2." not in one
        assert "2." in say(":more")
        assert "unknown command :bogus" in say(":bogus")
        term.send("tell me\x03")
        term.expect("^C")
        term.expect("newsqa> ")
        assert "Example Gazette" in say(":sources")
        term.send("\x04")
        assert term.proc.wait(timeout=30) == 0
        assert (tmp_path / "history").exists()
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
        term.proc.wait()
        os.close(term.master)


def test_repl_reads_questions_from_a_pipe(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", data, "ingest", str(SAMPLE)], check=True, capture_output=True
    )
    out = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", data, "repl"],
        input="What was the turnout in the Aldermoor election?\n:quit\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0
    assert "61.3 per cent" in out.stdout
