"""Named locks shared by the processes on one store: taken once, held by a live process only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable

import pytest

from retrieval.config import Config
from retrieval.newsindex import NewsIndex
from retrieval.storage.coordination import Coordinator


def coordinator_for(config: Config) -> Coordinator:
    """Return the coordinator of the configured store (made if missing)."""
    return NewsIndex.open(config, create=True).coordinator()


def test_a_lock_is_held_once_and_free_again_after_release(make_config: Callable[..., Config]) -> None:
    config = make_config()
    first, second = coordinator_for(config), coordinator_for(config)
    lease = first.try_lock("feed https://example.org/rss")
    assert lease is not None and lease.alive()
    assert second.try_lock("feed https://example.org/rss") is None
    assert second.holder("feed https://example.org/rss") == os.getpid()
    other = second.try_lock("feed https://example.org/other")  # another name is another lock
    assert other is not None
    lease.release()
    lease.release()  # twice is harmless
    assert not lease.alive()
    assert second.holder("feed https://example.org/rss") is None
    again = second.try_lock("feed https://example.org/rss")
    assert again is not None
    again.release()
    other.release()


@pytest.mark.processes
def test_a_killed_holder_lets_the_lock_go(make_config: Callable[..., Config]) -> None:
    config = make_config()
    config.data_path.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "NEWSQA_DATA_DIR": str(config.data_path)}
    if config.storage.backend == "postgres":
        env.update(NEWSQA_STORAGE_BACKEND="postgres", NEWSQA_PG_DSN=config.storage.dsn.reveal())
    script = textwrap.dedent(
        """
        import sys, time
        from retrieval.config import load_config
        from retrieval.newsindex import NewsIndex
        lease = NewsIndex.open(load_config(None), create=True).coordinator().try_lock("telegram poller test")
        print("held" if lease else "busy", flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "held"
            coordinator = coordinator_for(config)
            assert coordinator.try_lock("telegram poller test") is None
            assert coordinator.holder("telegram poller test") == child.pid
            child.kill()
            child.wait()
            lease = None
            deadline = time.monotonic() + 5
            while lease is None and time.monotonic() < deadline:
                lease = coordinator.try_lock("telegram poller test")
                time.sleep(0 if lease else 0.1)
            assert lease is not None, "the dead process's lock was not released"
            lease.release()
        finally:
            child.kill()
