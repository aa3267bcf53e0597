"""Fixtures of the Telegram tests: the fake Bot API, a real index, the bot running on loopback.

Import the fixtures you use into the test module by name (they are not in conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.config import AppConfig, TelegramConfig
from bot.telegram import build_application, serve
from retrieval.config import Config, PassageConfig, Secret, StorageConfig
from retrieval.domain import Article
from retrieval.ingest.loaders import make_article
from retrieval.models.encoder import Encoder
from retrieval.newsindex import NewsIndex
from retrieval.service import NewsService
from tests.conftest import BACKENDS, new_database
from tests.fake_bot_api import FakeBotApi

__all__ = [
    "TOKEN",
    "BotRunner",
    "bot_config",
    "fake_api_fixture",
    "no_real_telegram_fixture",
    "start_bot_fixture",
    "telegram_articles",
    "telegram_index_fixture",
    "token_not_logged_fixture",
]

# Shaped like a real token so that a leak would be found by grepping for it.
TOKEN = "7000001:AAH-fakeTestTokenForNewsqa_0123456789xyz"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

BRIDGE = [
    "The Harbour Bridge was closed to all traffic on Monday after engineers found cracks in two "
    "of its steel hangers during a routine inspection.",
    "City engineers said the cracks were caused by metal fatigue in hangers installed in 1962, and "
    "that the bridge would stay closed until every hanger had been checked.",
    "Ferries added extra crossings while the bridge was shut, and the port authority ran buses "
    "from the old ferry terminal to the business district every ten minutes.",
    "The mayor said repairs to the Harbour Bridge would cost about 40 million euros and take at "
    "least eight months, paid for from the city's emergency infrastructure fund.",
    "Commuters who used the bridge complained of journeys that doubled in length, and shops near "
    "the bridge reported that takings fell by a third in the first week of the closure.",
    "Inspectors had warned in a 2019 report that the bridge hangers needed replacing, the council "
    "admitted, but the replacement had been postponed twice because of budget cuts.",
    "A steel contractor from Rotterdam won the contract to replace all 48 hangers of the Harbour "
    "Bridge, working at night so that one lane could reopen for buses during the day.",
    "The bridge reopened to buses and cyclists in March, while cars must wait until the last "
    "hangers are replaced and the deck has been load-tested by the engineers.",
    "Engineers load-tested the bridge deck with twenty trucks full of sand, measuring how far the "
    "deck bent under the weight before allowing cars back.",
    "Historians noted that the Harbour Bridge had been closed only once before, in 1987, when a "
    "storm damaged the cables of the old swing section.",
    "The council promised an independent inquiry into why the 2019 warning about the bridge "
    "hangers was not acted on, to report before the end of the year.",
    "Residents held a street party on the bridge the evening before cars returned, with music "
    "and food stalls along the whole length of the deck.",
]

# A second long article on the same story, so one question has more quotes than fit one message.
INQUIRY = [
    f"Witness {n} told the Harbour Bridge inquiry that the cracked steel hangers {detail}, and "
    "that the engineers' warnings about the bridge had been clear since the 2019 inspection report."
    for n, detail in enumerate(
        [
            "were visible from the footpath for months",
            "had been painted over rather than replaced",
            "were listed as urgent in the maintenance plan",
            "had rusted where rainwater collected",
            "were never load-tested after the 1987 storm",
            "had been ordered but never delivered",
            "were the responsibility of three different departments",
            "could have been replaced for a fifth of today's cost",
            "were discussed at four council meetings",
            "had been photographed by a cyclist who wrote to the mayor",
            "were mentioned in the insurer's letter to the council",
            "worried the bridge's own maintenance crew",
        ],
        start=1,
    )
]

# Two more long reports on the inquiry, from other outlets and in other words.
HEARINGS = [
    (
        "Harbour Post",
        "https://post.example.com/bridge-hearings",
        "Bridge hearings: what the witnesses said",
        f"On day {n} of the hearings into the Harbour Bridge, a witness described how the hangers "
        f"{detail}; the inquiry chair asked why nobody had closed the bridge sooner.",
    )
    for n, detail in enumerate(
        [
            "creaked in strong winds",
            "were checked only from below",
            "showed rust streaks in photographs from 2020",
            "had never been x-rayed",
            "carried more weight than designed after the deck was widened",
            "were missing from the asset register",
            "were inspected by an unqualified subcontractor",
            "moved visibly when lorries crossed",
            "had bolts that were replaced with the wrong grade",
            "were covered by a warranty that had expired",
            "were scheduled for replacement in a plan that was never funded",
            "were the subject of an anonymous complaint",
        ],
        start=1,
    )
] + [
    (
        "City Courier",
        "https://courier.example.com/inquiry-witnesses",
        "Inquiry witnesses blame budget cuts for bridge closure",
        f"Another witness, a former council engineer, said the bridge hangers {detail}, and told "
        "the inquiry that budget cuts had delayed the repairs for years.",
    )
    for detail in [
        "should have been replaced in 2020",
        "were known to be the weakest part of the bridge",
        "were discussed in a memo to the finance committee",
        "needed a specialist inspection that was cancelled",
        "had been flagged by a visiting professor",
        "were on a list of urgent works that was cut in half",
        "failed a vibration test in 2021",
        "were left out of the public safety report",
        "could not be inspected without closing a lane",
        "were the reason engineers asked for a weight limit",
        "had been repainted twice instead of replaced",
        "worried the insurers more than the council",
    ]
]

TRICKY = (
    "The <b>Sea & Sky</b> café 🌊☕ raised its prices by < 5% & cut wages by > 3%, its owner "
    "said. He wrote <script>alert('hi')</script> & <i>unclosed on the chalkboard menu 👩‍👩‍👧‍👦, "
    "and customers posted photos of it with the tag #<3 & laughing emoji 😂😂.\n\n"
    'A regular customer said: "The coffee is still good & cheap-ish; the <tags> are not." '
    "The café's sign reads &amp; &lt;open&gt; in neon 🔆, which the owner calls a joke for "
    "programmers."
)


def telegram_articles() -> list[Article]:
    """Return the articles the Telegram tests ask about (plain, long, and full of markup)."""
    when = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)
    items: list[tuple[str, str, str, str]] = [
        (
            "\n\n".join(BRIDGE),
            "https://news.example.org/2024/harbour-bridge",
            "Harbour Bridge closed after cracks found",
            "Harbour Daily",
        ),
        (
            "\n\n".join(INQUIRY),
            "https://news.example.org/2024/harbour-bridge-inquiry",
            "Bridge inquiry hears of ignored warnings",
            "Harbour Daily",
        ),
        (
            TRICKY,
            "https://cafe.example.net/<b>sea&sky</b>",
            "<b>Prices</b> & pain 😀",
            "Tags & <Co>",
        ),
        (
            "The central bank raised its main interest rate by a quarter of a point to 4.5 percent "
            "on Thursday, saying inflation was still too high. The governor said further rises "
            "were possible if wages kept growing quickly.",
            "https://money.example.com/rates-rise",
            "Central bank raises rates to 4.5%",
            "Money Wire",
        ),
        (
            "Riverside United won the cup final 3-1 after extra time, with two late goals from "
            "their 19-year-old striker Mia Okafor. It was the club's first trophy in forty years.",
            "https://sport.example.com/cup-final",
            "Riverside win the cup",
            "Sport Today",
        ),
        (
            "The space agency's asteroid probe touched down on the asteroid Bennu-2 and collected "
            "about sixty grams of dust and pebbles, which it will bring back to Earth in 2027.",
            "https://science.example.org/probe",
            "Probe collects asteroid dust",
            "Science Weekly",
        ),
    ]
    for outlet in ("Harbour Post", "City Courier"):
        rows = [h for h in HEARINGS if h[0] == outlet]
        items.append(("\n\n".join(r[3] for r in rows), rows[0][1], rows[0][2], outlet))
    return [
        make_article(text, url=url, title=title, source=source, published=when) for text, url, title, source in items
    ]


@pytest.fixture(scope="session", name="telegram_index", params=BACKENDS)
def telegram_index_fixture(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, encoder: Encoder
) -> Iterator[NewsIndex]:
    """Return a real index (real encoder; FAISS and SQLite, or PostgreSQL) of the Telegram test articles."""
    storage = StorageConfig()
    if request.param == "postgres":
        dsn = new_database(request.getfixturevalue("pg_server"), "telegram")
        storage = StorageConfig(backend="postgres", dsn=Secret(dsn))
    # Long passages, so that one answer can need more than one message.
    config = Config(
        data_dir=str(tmp_path_factory.mktemp("telegram") / "data"),
        passages=PassageConfig(target_words=200, max_words=300),
        storage=storage,
    )
    index = NewsIndex.open(config, encoder=encoder, create=True)
    index.ingest(telegram_articles())
    yield index
    index.close()


@pytest.fixture(name="fake_api")
def fake_api_fixture() -> Iterator[FakeBotApi]:
    """Return a running fake Bot API that knows TOKEN."""
    with FakeBotApi(TOKEN) as api:
        yield api
    assert api.violations == [], f"requests that tried to leave loopback: {api.violations}"


@pytest.fixture(name="no_real_telegram")
def no_real_telegram_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail the test if anything resolves a host other than loopback (e.g. api.telegram.org)."""
    attempts: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            attempts.append(name)
            raise OSError(f"test guard: no network access to {name}")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield attempts
    assert attempts == [], f"tried to reach {attempts}"


@pytest.fixture(name="token_not_logged")
def token_not_logged_fixture(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Capture every log record at DEBUG and fail if the token appears in any of them."""
    caplog.set_level(logging.DEBUG)
    yield
    secret = TOKEN.split(":")[1]
    records = [r for phase in ("setup", "call", "teardown") for r in caplog.get_records(phase)]
    assert records, "nothing was logged: the check would prove nothing"
    leaked = [r for r in records if secret in r.getMessage()]
    assert not leaked, f"the token appeared in {len(leaked)} log record(s), e.g. {leaked[0].name}"


def bot_config(
    api: FakeBotApi,
    index: NewsIndex,
    tmp_path: Path,
    *,
    search: dict[str, Any] | None = None,
    **telegram: Any,
) -> AppConfig:
    """Return a config for the bot: the index's data dir, the fake's base_url, a token file."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    return AppConfig(
        core=dataclasses.replace(index.config, search=dataclasses.replace(index.config.search, **(search or {}))),
        telegram=TelegramConfig(base_url=api.base_url, token_file=str(token_file), **telegram),
    )


class BotRunner:
    """The real Application, long polling the fake from a thread with its own event loop."""

    def __init__(self, config: AppConfig, index: NewsIndex, api: FakeBotApi) -> None:
        self.app = build_application(config, NewsService(index))
        self.api = api
        self.loop: asyncio.AbstractEventLoop | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="bot", daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        try:
            serve(self.app, handle_signals=False)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def start(self) -> BotRunner:
        """Start polling; return once the bot has asked the fake for updates."""
        self._thread.start()
        self.api.wait_polling()
        return self

    def stop(self) -> None:
        """Stop the bot as SIGTERM would, and wait for it to finish."""
        loop = self.loop
        if loop is not None and not loop.is_closed():

            def leave() -> None:
                raise SystemExit

            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(leave)
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the bot did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture(name="start_bot")
def start_bot_fixture(
    fake_api: FakeBotApi, telegram_index: NewsIndex, tmp_path: Path, no_real_telegram: list[str]
) -> Iterator[Callable[..., BotRunner]]:
    """Return a function that starts the bot with config overrides; every bot stops at teardown."""
    runners: list[BotRunner] = []

    def start(*, search: dict[str, Any] | None = None, **telegram: Any) -> BotRunner:
        config = bot_config(fake_api, telegram_index, tmp_path, search=search, **telegram)
        runner = BotRunner(config, telegram_index, fake_api).start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()
