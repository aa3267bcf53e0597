"""The postgres backend on a real PostgreSQL + pgvector: schema versions, ranking like the local
backend, several processes on one database, migration both ways, a database restart.

The end-to-end tests of the core run on this backend too (conftest's ``backend`` parameter);
these are the behaviours only a shared database has.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import cli
from retrieval.config import Config, SearchConfig, Secret, StorageConfig, load_config
from retrieval.domain import Answer
from retrieval.errors import EmptyIndexError, StoreError
from retrieval.ingest.loaders import load_file, make_article
from retrieval.models.encoder import Encoder
from retrieval.newsindex import NewsIndex
from retrieval.storage.pg.migrations import LATEST, MIGRATIONS
from tests.conftest import SAMPLE
from tests.pg_server import PgServer
from tests.pg_server import available as postgres_available

pytestmark = pytest.mark.skipif(
    not postgres_available(), reason="the postgres extra is not installed: pip install -e '.[postgres]'"
)

QUESTIONS = (
    "How far did the Kestrel probe travel?",
    "How big is the asteroid Vella?",
    "What interest rate did the National Bank of Norland decide on?",
    "Who scored the winning penalty?",
    "router password",
)
# Filters apply while candidates are found in the database, after (from 8x deeper lists) locally.
FILTERED = ("What did the council vote for? source:gazette", "wildfire evacuation since:2025-01-01")


def _sample() -> list:  # type: ignore[type-arg]
    return [a for f in sorted(SAMPLE.glob("*.md")) for a in load_file(f)[0]]


@pytest.fixture
def pg_dsn(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """Return the DSN of a fresh database, dropped after the test."""
    name = "x_" + request.node.name.lower().replace("[", "_").replace("]", "").replace("-", "_")[:50]
    dsn = pg_server.create_database(name)
    yield dsn
    pg_server.drop_database(dsn)


def _same_answer(a: Answer, b: Answer) -> bool:
    """The same quotes, marks and copies; scores equal to 1e-3 (the local BM25 may be float16)."""

    def shape(x: Answer) -> list[object]:
        return [x.answered, x.reason] + [
            (q.passage_id, q.text, q.highlight, q.link, [c.id for c in q.also_in]) for q in x.quotes
        ]

    return shape(a) == shape(b) and all(abs(p.score - q.score) <= 1e-3 for p, q in zip(a.quotes, b.quotes, strict=True))


def _pg_config(dsn: str, data_dir: Path, **storage: object) -> Config:
    return Config(
        data_dir=str(data_dir),
        storage=StorageConfig(backend="postgres", dsn=Secret(dsn), **storage),  # type: ignore[arg-type]
    )


def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_importing_the_core_loads_no_database_driver() -> None:
    code = "import sys, retrieval, retrieval.newsindex; print([m for m in sys.modules if m.startswith('psycopg')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_dsn_is_a_secret_and_the_pg_env_var_wins(tmp_path: Path) -> None:
    config = load_config(
        None,
        env={
            "NEWSQA_STORAGE_BACKEND": "postgres",
            "NEWSQA_STORAGE_DSN": "host=a password=first",
            "NEWSQA_PG_DSN": "host=b password=hunter2",
        },
    )
    assert config.storage.backend == "postgres"
    assert config.storage.dsn.reveal() == "host=b password=hunter2"
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.storage)


def test_db_upgrade_creates_the_schema_once_and_a_newer_schema_is_refused(pg_dsn: str, tmp_path: Path) -> None:
    env = {"NEWSQA_STORAGE_BACKEND": "postgres", "NEWSQA_PG_DSN": pg_dsn, "NEWSQA_DATA_DIR": str(tmp_path)}
    code, out, err = _cli(env, "db", "upgrade")
    assert code == 0, err
    assert "applied migration 1" in out and f"version {LATEST}" in out
    code, out, _ = _cli(env, "db", "upgrade")
    assert code == 0 and "already up to date" in out
    import psycopg

    with psycopg.connect(pg_dsn, autocommit=True) as con:
        con.execute("INSERT INTO schema_version (version, description) VALUES (99, 'from the future')")
    code, out, err = _cli(env, "sources")
    assert code == 1
    assert err.strip() == (
        f"newsqa: the database schema is version 99, newer than this newsqa knows ({LATEST}); upgrade newsqa"
    )
    code, _, err = _cli(env, "db", "upgrade")
    assert code == 1 and "newer than this newsqa" in err


def test_an_empty_database_says_to_ingest_first(pg_dsn: str, tmp_path: Path) -> None:
    with pytest.raises(EmptyIndexError, match="newsqa ingest"):
        NewsIndex.open(_pg_config(pg_dsn, tmp_path))


def test_the_database_ranks_exactly_like_the_local_backend(pg_dsn: str, tmp_path: Path, encoder: Encoder) -> None:
    """Same candidates, BM25 and fusion: the same passages in the same order with the same scores."""
    articles = _sample()
    pg = NewsIndex.open(_pg_config(pg_dsn, tmp_path / "pg"), encoder=encoder, create=True)
    local = NewsIndex.open(Config(data_dir=str(tmp_path / "local")), encoder=encoder, create=True)
    try:
        pg.ingest(articles)
        local.ingest(articles)
        for question in QUESTIONS:
            for fusion in ("weighted", "rrf", "dense", "lexical"):
                ours = pg.search(question, 10, fusion)
                theirs = local.search(question, 10, fusion)
                assert [h.passage.id for h in ours] == [h.passage.id for h in theirs], (question, fusion)
                # The local BM25 index may keep its scores as float16 (3 significant digits).
                for a, b in zip(ours, theirs, strict=True):
                    assert a.fused == pytest.approx(b.fused, abs=1e-3)
                    assert a.dense == pytest.approx(b.dense, abs=1e-4)
                    assert a.lexical == pytest.approx(b.lexical, rel=1e-3, abs=1e-3)
            assert _same_answer(pg.ask(question), local.ask(question)), question
        ids = range(1, 41)
        assert pg.backend.store.sentence_vectors(ids).keys() == local.backend.store.sentence_vectors(ids).keys()
        for question in FILTERED:
            ours_first, theirs_first = pg.ask(question).quotes[0], local.ask(question).quotes[0]
            assert ours_first.passage_id == theirs_first.passage_id
            assert ours_first.score == pytest.approx(theirs_first.score, abs=1e-3)
    finally:
        pg.close()


def test_a_shallow_top_k_skips_passages_and_still_ranks_like_the_local_backend(
    pg_dsn: str, tmp_path: Path, encoder: Encoder
) -> None:
    """With few candidates the database scores only the passages that can reach the top (MaxScore)."""
    shallow = SearchConfig(candidates=1)
    articles = _sample()
    config = _pg_config(pg_dsn, tmp_path / "pg")
    pg = NewsIndex.open(dataclasses.replace(config, search=shallow), encoder=encoder, create=True)
    local = NewsIndex.open(Config(data_dir=str(tmp_path / "local"), search=shallow), encoder=encoder, create=True)
    try:
        pg.ingest(articles)
        local.ingest(articles)
        long_questions = (
            "Which council voted on the new budget for the city and how many members voted for it this week?",
            "What did the national bank say about interest rates, inflation and the price of houses in Norland?",
        )
        for question in QUESTIONS + long_questions:
            for k in (1, 2, 3, 5):
                for fusion in ("lexical", "weighted", "rrf"):
                    ours = pg.search(question, k, fusion)
                    theirs = local.search(question, k, fusion)
                    assert [h.passage.id for h in ours] == [h.passage.id for h in theirs], (question, k, fusion)
                    for a, b in zip(ours, theirs, strict=True):
                        assert a.lexical == pytest.approx(b.lexical, rel=1e-3, abs=1e-3)
    finally:
        pg.close()


def _postings_problems(index: NewsIndex) -> list[object]:
    """Postings and term statistics that differ from the passages' own terms (none when in sync)."""
    with index.backend.store.connection() as con:  # type: ignore[attr-defined]
        wrong = con.execute(
            "WITH want AS (SELECT u.lexeme AS term, p.id AS passage_id, cardinality(u.positions) AS tf, p.n_terms AS dl"
            " FROM passages p CROSS JOIN LATERAL unnest(p.terms) u)"
            " (SELECT * FROM want EXCEPT ALL SELECT * FROM postings)"
            " UNION ALL (SELECT * FROM postings EXCEPT ALL SELECT * FROM want)"
        ).fetchall()
        wrong += con.execute(
            "SELECT d.term, d.df, s.df FROM (SELECT term, count(*) AS df FROM postings GROUP BY term) d"
            " FULL JOIN term_stats s ON s.term = d.term WHERE d.df IS DISTINCT FROM s.df"
            " OR s.max_tf < (SELECT max(tf) FROM postings p WHERE p.term = s.term)"
            " OR s.min_dl > (SELECT min(dl) FROM postings p WHERE p.term = s.term)"
        ).fetchall()
    return list(wrong)


def test_postings_follow_every_write_and_migration_2_fills_them_in(
    pg_dsn: str, tmp_path: Path, encoder: Encoder
) -> None:
    config = _pg_config(pg_dsn, tmp_path)
    index = NewsIndex.open(config, encoder=encoder, create=True)
    try:
        articles = _sample()
        index.ingest(articles)
        copy = make_article(articles[1].text, url="https://example.org/copy-of-1", title=articles[1].title)
        index.ingest([copy])
        index.remove(articles[0].id)
        index.remove(articles[1].id)  # its passages move to the copy
        index.ingest([articles[0]])
        assert _postings_problems(index) == []
        question = "How far did the Kestrel probe travel?"
        before = [(h.passage.id, h.lexical) for h in index.search(question, 5, "lexical")]
        # A database written before migration 2 (no postings): the migration fills them in.
        with index.backend.store.connection() as con:  # type: ignore[attr-defined]
            con.execute(
                "DROP TABLE postings; DROP TABLE term_stats;"
                " DROP TRIGGER passages_postings_added ON passages; DROP TRIGGER passages_postings_removed ON passages;"
                " DROP FUNCTION postings_added(); DROP FUNCTION postings_removed()"
            )
            with con.transaction():
                con.execute(next(m for m in MIGRATIONS if m.version == 2).sql)
        assert _postings_problems(index) == []
        after = [(h.passage.id, h.lexical) for h in index.search(question, 5, "lexical")]
        assert [a[0] for a in after] == [b[0] for b in before]
        assert [a[1] for a in after] == pytest.approx([b[1] for b in before], rel=1e-9)
    finally:
        index.close()


def _table(dsn: str, sql: str) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(dsn) as con:
        return list(con.execute(sql).fetchall())


_BM25_TABLES = (
    "SELECT id, article_id, terms::text, n_terms FROM passages ORDER BY id",
    "SELECT term, passage_id, tf, dl FROM postings ORDER BY term, passage_id",
    "SELECT term, df, max_tf, min_dl FROM term_stats ORDER BY term",
    "SELECT passages, terms FROM corpus_stats",
)


def test_migration_3_takes_the_title_out_of_the_terms_of_a_version_2_database(
    pg_server: PgServer, pg_dsn: str, tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database written by version 2 (title + text in every passage's terms) is re-tokenised
    by `newsqa db upgrade` into exactly what a fresh build of the same passages holds."""
    import psycopg

    from retrieval.ingest.indexing import index_text
    from retrieval.search.tokens import tokenize
    from retrieval.storage.pg import migrations
    from retrieval.storage.pg.literals import terms_literal

    untitled = make_article(
        "No headline here: the tram depot in Riverside opens on Monday.", url="https://example.org/u"
    )
    articles = [*_sample(), untitled]
    fresh = NewsIndex.open(_pg_config(pg_dsn, tmp_path / "fresh"), encoder=encoder, create=True)
    try:
        fresh.ingest(articles)
    finally:
        fresh.close()
    # Version 2 put the title's tokens in every passage of its article.
    title_terms = {a.id: set(tokenize([a.title])[0]) for a in articles if a.title}

    old_dsn = pg_server.create_database("x_migration_3_version_2")
    try:
        with psycopg.connect(old_dsn, autocommit=True) as old, psycopg.connect(pg_dsn) as new:
            with monkeypatch.context() as m:
                m.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:2])
                migrations.upgrade(old)
            assert migrations.current_version(old) == 2
            # The same rows, written as version 2 wrote them.
            with old.transaction():
                for key, value in new.execute("SELECT key, value FROM meta").fetchall():
                    old.execute(
                        "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )
                row = new.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
                assert row is not None
                dim = int(row[0])
                for statement in migrations.dimension_ddl(dim):
                    old.execute(statement)
                old.execute(migrations.INDEX_DDL)
                columns = "id, url, title, source, published, published_at, language, text, content_hash,"
                columns += " duplicate_of, fetched_at, added_at"
                for row in new.execute(f"SELECT {columns} FROM articles ORDER BY added_at, id").fetchall():  # noqa: S608
                    old.execute(f"INSERT INTO articles ({columns}) VALUES ({', '.join(['%s'] * 12)})", row)  # noqa: S608
                rows = new.execute(
                    'SELECT p.id, p.article_id, p.ordinal, p.start, p."end", p.text, p.embedding::text, a.title'
                    " FROM passages p JOIN articles a ON a.id = p.article_id ORDER BY p.id"
                ).fetchall()
                for row in rows:
                    toks = tokenize([index_text(row[7], row[5])])[0]
                    old.execute(
                        'INSERT INTO passages (id, article_id, ordinal, start, "end", text, terms, n_terms, embedding)'
                        " VALUES (%s, %s, %s, %s, %s, %s, %s::tsvector, %s, %s::vector)",
                        (*row[:6], terms_literal(toks), len(toks), row[6]),
                    )
            held = old.execute("SELECT article_id, text, tsvector_to_array(terms) FROM passages ORDER BY id").fetchall()
            assert all(title_terms[aid] <= set(terms) for aid, _, terms in held if aid in title_terms)
        # Title-only terms: those of the title that the passage's own text lacks.
        title_only = [title_terms.get(aid, set()) - set(tokenize([text])[0]) for aid, text, _ in held]
        assert sum(map(len, title_only)) > 50

        env = {"NEWSQA_STORAGE_BACKEND": "postgres", "NEWSQA_PG_DSN": old_dsn, "NEWSQA_DATA_DIR": str(tmp_path)}
        code, out, err = _cli(env, "db", "upgrade")
        assert code == 0, err
        assert "applied migration 3" in out and "without the article title" in out and f"version {LATEST}" in out

        after = _table(old_dsn, "SELECT article_id, text, tsvector_to_array(terms) FROM passages ORDER BY id")
        assert len(after) == len(held) == 41
        assert [r[:2] for r in after] == [r[:2] for r in held]
        assert not any(gone & set(row[2]) for gone, row in zip(title_only, after, strict=True))  # type: ignore[call-overload]
        for sql in _BM25_TABLES:
            assert _table(old_dsn, sql) == _table(pg_dsn, sql), sql
        upgraded = NewsIndex.open(_pg_config(old_dsn, tmp_path / "upgraded"), encoder=encoder)
        fresh = NewsIndex.open(_pg_config(pg_dsn, tmp_path / "fresh"), encoder=encoder)
        try:
            assert upgraded.check().ok  # the vector and full-text indexes are there again
            assert _postings_problems(upgraded) == []
            for question in QUESTIONS:
                ours = [(h.passage.id, h.lexical) for h in upgraded.search(question, 5, "lexical")]
                theirs = [(h.passage.id, h.lexical) for h in fresh.search(question, 5, "lexical")]
                assert ours == theirs, question
        finally:
            upgraded.close()
            fresh.close()
    finally:
        pg_server.drop_database(old_dsn)


def test_an_article_ingested_by_one_process_is_answered_by_another_at_once(
    pg_dsn: str, tmp_path: Path, encoder: Encoder
) -> None:
    config = _pg_config(pg_dsn, tmp_path)
    writer = NewsIndex.open(config, encoder=encoder, create=True)
    writer.ingest(_sample()[:3])
    reader = NewsIndex.open(config, encoder=encoder)
    try:
        question = "How many earthquakes were recorded under Mount Orrin?"
        assert not reader.ask(question).answered
        writer.ingest(
            [
                make_article(
                    "Volcanologists recorded 212 small earthquakes under Mount Orrin overnight.",
                    url="https://example.org/orrin",
                )
            ]
        )
        answer = reader.ask(question)  # no refresh: every question reads the database
        assert answer.quotes[0].article.url == "https://example.org/orrin"
        assert reader.refresh() is True and reader.refresh() is False
    finally:
        writer.close()
        reader.close()


def _log_rows(local: NewsIndex) -> list[tuple[object, ...]]:
    with local.backend.store.connection() as con:
        return [
            tuple(r)
            for table in ("questions", "feedback")
            for r in con.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()  # noqa: S608
        ]


def test_migrate_copies_both_ways_without_embedding_again(
    pg_dsn: str, tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    local_dir = tmp_path / "local"
    local = NewsIndex.open(Config(data_dir=str(local_dir)), encoder=encoder, create=True)
    local.ingest(_sample())
    before = {q: local.ask(q) for q in QUESTIONS + FILTERED}
    asked = local.backend.log_question(QUESTIONS[0], "telegram", 7, 8, True, [3, 1])
    local.backend.log_question("Who won?", "cli", None, None, False, [])
    local.backend.record_feedback(asked, 1, 7, 8, [3, 1])
    local.backend.record_feedback(asked, -1, 7, 9, [3])
    usage = local.backend.usage()
    log = _log_rows(local)
    local.close()

    def no_encoder(*_: object) -> Encoder:
        raise AssertionError("migrate must not embed")

    monkeypatch.setattr("retrieval.newsindex.load_encoder", no_encoder)
    env = {"NEWSQA_STORAGE_BACKEND": "postgres", "NEWSQA_PG_DSN": pg_dsn}
    code, out, err = _cli(env, "--data-dir", str(local_dir), "migrate", "--from", "local", "--to", "postgres")
    assert code == 0, err
    assert out.strip() == "copied 10 articles, 40 passages, 2 questions and 2 feedback from local to postgres"
    code, _, err = _cli(env, "--data-dir", str(local_dir), "migrate", "--from", "local", "--to", "postgres")
    assert code == 1 and "already holds 10 articles" in err
    back_dir = tmp_path / "back"
    code, out, err = _cli(env, "--data-dir", str(back_dir), "migrate", "--from", "postgres", "--to", "local")
    assert code == 0, err
    monkeypatch.undo()

    pg = NewsIndex.open(_pg_config(pg_dsn, tmp_path), encoder=encoder)
    back = NewsIndex.open(Config(data_dir=str(back_dir)), encoder=encoder)
    try:
        assert pg.check().ok and back.check().ok
        assert _postings_problems(pg) == []
        stored = back.backend.store.sentence_vectors(range(1, 41))
        assert stored.keys() == pg.backend.store.sentence_vectors(range(1, 41)).keys()
        for question, answer in before.items():
            assert _same_answer(back.ask(question), answer), question
            if question not in FILTERED:
                assert _same_answer(pg.ask(question), answer), question
        # New passages in the database continue after the copied ids.
        report = pg.ingest([make_article("A new ferry terminal opened in Lindqvist Bay.", url="https://example.org/n")])
        assert report.added == 1 and pg.check().ok
        # The questions log and feedback came along, both ways, with their ids.
        assert pg.backend.usage() == usage and back.backend.usage() == usage
        assert pg.backend.get_question(asked) == QUESTIONS[0]
        assert _log_rows(back) == log
        assert pg.backend.log_question("Next?", "cli", None, None, False, []) == 3
    finally:
        pg.close()


def test_answers_resume_after_the_database_restarts(
    pg_server: PgServer, pg_dsn: str, tmp_path: Path, encoder: Encoder
) -> None:
    index = NewsIndex.open(_pg_config(pg_dsn, tmp_path), encoder=encoder, create=True)
    try:
        index.ingest(_sample())
        question = "How far did the Kestrel probe travel?"
        assert index.ask(question).answered
        pg_server.halt()
        try:
            with pytest.raises(StoreError) as failed:
                index.ask(question)
            assert "\n" not in str(failed.value)
        finally:
            pg_server.resume()
        assert index.ask(question).answered
    finally:
        index.close()


def test_a_statement_over_the_timeout_is_cancelled_with_one_line(pg_dsn: str, tmp_path: Path, encoder: Encoder) -> None:
    index = NewsIndex.open(_pg_config(pg_dsn, tmp_path, statement_timeout=0.2), encoder=encoder, create=True)
    try:
        with pytest.raises(StoreError, match="statement timeout"), index.backend.store.connection() as con:
            con.execute("SELECT pg_sleep(2)")
    finally:
        index.close()


def test_a_read_only_replica_dsn_answers_and_writes_go_to_the_primary(
    pg_dsn: str, tmp_path: Path, encoder: Encoder
) -> None:
    """The replica here is the same server reached with read-only sessions: a write through it would fail."""
    replica = pg_dsn + " options='-c default_transaction_read_only=on'"
    config = _pg_config(pg_dsn, tmp_path, replica_dsn=Secret(replica))
    index = NewsIndex.open(config, encoder=encoder, create=True)
    try:
        index.ingest(_sample())
        assert index.ask("How big is the asteroid Vella?").answered
        with index.backend.store.db.connection(read_only=True) as con:
            assert con.execute("SHOW default_transaction_read_only").fetchone()[0] == "on"
    finally:
        index.close()


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    dsn = "host=127.0.0.1 port=9 user=newsqa password=hunter2 dbname=newsqa connect_timeout=2"
    with pytest.raises(StoreError) as failed:
        NewsIndex.open(_pg_config(dsn, tmp_path))
    message = str(failed.value)
    assert message.startswith("cannot connect to the database") and "hunter2" not in message and "\n" not in message


def test_one_writer_at_a_time_across_processes(pg_dsn: str, tmp_path: Path, encoder: Encoder) -> None:
    config = _pg_config(pg_dsn, tmp_path)
    first = NewsIndex.open(config, encoder=encoder, create=True)
    second = NewsIndex.open(config, encoder=encoder)
    try:
        with (
            first.backend.store.writing(),  # type: ignore[attr-defined]
            pytest.raises(StoreError, match="another newsqa process is writing"),
            second.backend.store.writing(wait=0.3),  # type: ignore[attr-defined]
        ):
            pass
        with second.backend.store.writing(wait=0.3):  # type: ignore[attr-defined]
            pass
    finally:
        first.close()
        second.close()


def test_check_finds_wrong_corpus_sums_and_repair_recounts(pg_dsn: str, tmp_path: Path, encoder: Encoder) -> None:
    """BM25's passage count and mean length are kept by triggers; check compares them with the rows."""
    index = NewsIndex.open(_pg_config(pg_dsn, tmp_path), encoder=encoder, create=True)
    try:
        index.ingest(_sample())
        index.remove(_sample()[0].id)
        assert index.check().ok
        with index.backend.store.connection() as con:
            con.execute("UPDATE corpus_stats SET passages = passages + 5")
        report = index.check()
        assert not report.ok and "corpus_stats" in report.problems[0]
        assert index.check(repair=True).ok and index.check().ok
    finally:
        index.close()


def test_a_process_opening_a_database_another_is_setting_up_waits_for_it(pg_server: PgServer) -> None:
    """Two replicas started at once on an empty database: the second must not find it half set
    up (migration 1 committed, later ones still running) and refuse to start."""
    import threading

    import psycopg

    from retrieval.storage.pg import migrations
    from retrieval.storage.pg.connect import Database
    from retrieval.storage.pg.store import PgStore

    dsn = pg_server.create_database("x_setup_race")
    with psycopg.connect(dsn, autocommit=True) as first:
        # The first process, part way through: migration 1 applied, the migration lock held.
        first.execute("SELECT pg_advisory_lock(%s)", (migrations.MIGRATION_LOCK,))
        with first.transaction():
            first.execute(
                "CREATE TABLE schema_version (version integer PRIMARY KEY, description text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            first.execute(MIGRATIONS[0].sql)
            first.execute("INSERT INTO schema_version (version, description) VALUES (1, 'x')")
        outcome: list[object] = []

        def second() -> None:
            db = Database(StorageConfig(backend="postgres", dsn=Secret(dsn)))
            try:
                PgStore(db, create=True)
                outcome.append("opened")
            except Exception as exc:  # the outcome is the assertion
                outcome.append(exc)
            finally:
                db.close()

        waiting = threading.Thread(target=second)
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive() and outcome == []  # it waits for the first one's migrations
        migrations.upgrade(first)  # the first one goes on with migrations 2.. (its lock is re-entrant)
        first.execute("SELECT pg_advisory_unlock(%s)", (migrations.MIGRATION_LOCK,))
        waiting.join(30)
    assert outcome == ["opened"]
