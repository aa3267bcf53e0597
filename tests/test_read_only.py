"""A data directory that cannot be written (a read-only volume, a backup) still answers; writes say why."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import FIXTURES, SAMPLE

pytestmark = pytest.mark.local_only

PR_CAPBSET_DROP = 24
# Root writes anywhere through these capabilities; without them it obeys the permission bits.
DAC_CAPABILITIES = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER


def _as_plain_user() -> None:
    """In the child before exec: drop root's power to ignore permissions (no-op for other users)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in DAC_CAPABILITIES:
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "cannot drop a capability")


def _newsqa(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", str(data), *args],
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=_as_plain_user,
        check=False,
    )


def _set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


@pytest.fixture(scope="module")
def read_only_data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    data = tmp_path_factory.mktemp("ro") / "data"
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "--data-dir", str(data), "ingest", str(SAMPLE)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    _set_writable(data, False)
    probe = _newsqa(data.parent, "--help")  # the capability drop itself must work here
    if probe.returncode != 0:
        _set_writable(data, True)
        pytest.skip(f"cannot run a process that obeys permission bits: {probe.stderr.strip()[-200:]}")
    yield data
    _set_writable(data, True)


def test_asking_listing_and_checking_work_from_a_read_only_directory(read_only_data: Path) -> None:
    before = sorted(p.name for p in read_only_data.iterdir())
    ask = _newsqa(read_only_data, "ask", "--json", "Who won the cup final?")
    assert ask.returncode == 0, ask.stderr
    assert "Harbour Town won the National Cup" in json.loads(ask.stdout)["quotes"][0]["text"]
    sources = _newsqa(read_only_data, "sources")
    assert sources.returncode == 0 and "Demo Sports Wire" in sources.stdout, sources.stderr
    check = _newsqa(read_only_data, "check")
    assert check.returncode == 0 and "ok: 10 articles" in check.stdout, check.stderr
    assert sorted(p.name for p in read_only_data.iterdir()) == before  # nothing written beside it


def test_writing_to_a_read_only_directory_is_one_plain_line(read_only_data: Path) -> None:
    for args in (("ingest", str(FIXTURES / "article.md")), ("remove", "https://example.org/nothing")):
        done = _newsqa(read_only_data, *args)
        assert done.returncode == 1
        if args[0] == "ingest":
            assert done.stderr.strip().splitlines() == [
                f"newsqa: cannot write to {read_only_data} (Permission denied): "
                "newsqa can answer from a read-only directory but not write to it"
            ]
        assert "Traceback" not in done.stderr and "not a usable newsqa database" not in done.stderr
