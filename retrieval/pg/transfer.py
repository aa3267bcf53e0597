"""Copy a corpus between the local data directory and a PostgreSQL database, either way.

Articles, passages (same ids, offsets and text), their vectors and sentence vectors are copied
as stored: nothing is embedded again. The questions log and the feedback on answers come along
with the same ids (feedback refers to its question by id). The target must be empty, and
receives the source's encoder identity, so a mismatched model is refused there as it would have
been here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from retrieval.config import Config
from retrieval.errors import ConfigError, StoreError
from retrieval.lexical import tokenize
from retrieval.newsindex import NewsIndex
from retrieval.pg.index import PgNewsIndex
from retrieval.pg.store import PgStore, terms_literal, vector_literal
from retrieval.store import Row
from retrieval.wording import plural

__all__ = ["TransferReport", "copy_corpus", "migrate"]

_COLUMNS = (
    "id",
    "url",
    "title",
    "source",
    "published",
    "language",
    "text",
    "content_hash",
    "duplicate_of",
    "fetched_at",
    "added_at",
)
_BATCH = 2000
_LOCAL_PASSAGE = (
    'INSERT INTO passages (id, article_id, ordinal, start, "end", text, embedding, sentences)'
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class TransferReport:
    """What was copied."""

    articles: int
    passages: int
    questions: int = 0
    feedback: int = 0


def migrate(config: Config, source: str, target: str) -> TransferReport:
    """Copy the corpus of backend ``source`` ("local" or "postgres") into the empty ``target``."""
    if {source, target} != {"local", "postgres"}:
        raise ConfigError('migrate copies between "local" and "postgres", one each way')

    def open_on(backend: str, create: bool) -> NewsIndex:
        return NewsIndex.open(
            dataclasses.replace(config, storage=dataclasses.replace(config.storage, backend=backend)), create=create
        )

    src = open_on(source, create=False)
    try:
        dst = open_on(target, create=True)
        try:
            return copy_corpus(src, dst)
        finally:
            dst.close()
    finally:
        src.close()


def copy_corpus(source: NewsIndex, target: NewsIndex) -> TransferReport:
    """Copy every article and passage of ``source`` into the empty ``target``."""
    encoder = source.store.get_meta("encoder")
    dim = source.store.get_meta("dim")
    if encoder is None or dim is None:
        raise StoreError("the source holds no articles yet; nothing to migrate")
    if target.store.counts() != (0, 0):
        articles, passages = target.store.counts()
        raise StoreError(
            f"the target already holds {plural(articles, 'article')} and {plural(passages, 'passage')}; "
            "migrate into an empty one"
        )
    with target._writing():
        if isinstance(target, PgNewsIndex):
            return _into_postgres(source, target.store, encoder, int(dim))
        report = _into_local(source, target, encoder, int(dim))
    # The FAISS and BM25 files are built from the copied rows, without embedding anything.
    target.check(repair=True)
    return report


# -- reading ----------------------------------------------------------------------------------------


def _articles(source: NewsIndex) -> Iterator[list[dict[str, Any]]]:
    columns = ", ".join(_COLUMNS)
    if isinstance(source, PgNewsIndex):
        sql = f"SELECT {columns} FROM articles ORDER BY added_at, id"  # noqa: S608
        with source.store.connection() as con, con.cursor(row_factory=source.store.db.dict_row) as cur:
            cur.execute(sql)
            while rows := cur.fetchmany(_BATCH):
                yield [{**r, "added_at": r["added_at"].isoformat()} for r in rows]
        return
    with source.store.connection() as con:
        cur = con.execute(f"SELECT {columns} FROM articles ORDER BY added_at, id")  # noqa: S608
        while rows := cur.fetchmany(_BATCH):
            yield [dict(r) for r in rows]


_PassageRow = tuple[int, str, int, int, int, str, np.ndarray, bytes | None]


def _passage_row(row: Row, vector: np.ndarray, sentences: bytes | None) -> _PassageRow:
    """Return one passage as ``_passages`` yields it; the backends differ only in how they store
    the vector and the sentence vectors."""
    return (int(row["id"]), row["article_id"], row["ordinal"], row["start"], row["end"], row["text"], vector, sentences)


def _passages(source: NewsIndex) -> Iterator[list[_PassageRow]]:
    """Yield ``(id, article_id, ordinal, start, end, text, vector, sentences)`` in id order."""
    last = -1
    while True:
        if isinstance(source, PgNewsIndex):
            rows = source.store._rows(
                'SELECT p.id, p.article_id, p.ordinal, p.start, p."end", p.text, p.embedding::real[] AS embedding,'
                " s.sentences FROM passages p LEFT JOIN passage_sentences s ON s.passage_id = p.id"
                " WHERE p.id > %s ORDER BY p.id LIMIT %s",
                (last, _BATCH),
                read_only=False,
            )
            batch = [
                _passage_row(
                    r,
                    np.asarray(r["embedding"], dtype=np.float32),
                    None if r["sentences"] is None else bytes(r["sentences"]),
                )
                for r in rows
            ]
        else:
            # Opening the store brought it to the current schema: the sentences column exists.
            with source.store.connection() as con:
                rows = con.execute(
                    'SELECT id, article_id, ordinal, start, "end", text, embedding, sentences'
                    " FROM passages WHERE id > ? ORDER BY id LIMIT ?",
                    (last, _BATCH),
                ).fetchall()
            batch = [_passage_row(r, np.frombuffer(r["embedding"], dtype=np.float32), r["sentences"]) for r in rows]
        if not batch:
            return
        last = batch[-1][0]
        yield batch


# A question: (id, asked_at, question, channel, chat_id, user_id, answered, passage ids).
_Question = tuple[int, datetime, str, str, int | None, int | None, bool, list[int]]
# Feedback: (id, question_id, value, chat_id, user_id, passage ids, at).
_Feedback = tuple[int, int, int, int | None, int | None, list[int], datetime]


def _log(source: NewsIndex) -> tuple[list[_Question], list[_Feedback]]:
    """Return the source's questions log and feedback, in id order."""
    if isinstance(source, PgNewsIndex):
        questions = source.store._rows(
            "SELECT id, asked_at, question, channel, chat_id, user_id, answered, passage_ids"
            " FROM questions ORDER BY id",
            read_only=False,
        )
        feedback = source.store._rows(
            "SELECT id, question_id, value, chat_id, user_id, passage_ids, at FROM feedback ORDER BY id",
            read_only=False,
        )
        return (
            [
                (
                    r["id"],
                    r["asked_at"],
                    r["question"],
                    r["channel"],
                    r["chat_id"],
                    r["user_id"],
                    r["answered"],
                    [int(p) for p in r["passage_ids"]],
                )
                for r in questions
            ],
            [
                (
                    r["id"],
                    r["question_id"],
                    r["value"],
                    r["chat_id"],
                    r["user_id"],
                    [int(p) for p in r["passage_ids"]],
                    r["at"],
                )
                for r in feedback
            ],
        )
    with source.store.connection() as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()}
        q_rows = (
            con.execute(
                "SELECT id, asked_at, question, channel, chat_id, user_id, answered, passage_ids"
                " FROM questions ORDER BY id"
            ).fetchall()
            if "questions" in tables
            else []
        )
        f_rows = (
            con.execute(
                "SELECT id, question_id, value, chat_id, user_id, passage_ids, at FROM feedback ORDER BY id"
            ).fetchall()
            if "feedback" in tables
            else []
        )
    return (
        [
            (int(r[0]), _stamp(r[1]), r[2], r[3], r[4], r[5], bool(r[6]), [int(p) for p in json.loads(r[7])])
            for r in q_rows
        ],
        [
            (int(r[0]), int(r[1]), int(r[2]), r[3], r[4], [int(p) for p in json.loads(r[5])], _stamp(r[6]))
            for r in f_rows
        ],
    )


# -- writing ----------------------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _stamp(value: str) -> datetime:
    parsed = _time(value)
    if parsed is None:
        raise StoreError("a logged question or feedback has no time")
    return parsed


def _iso(value: datetime) -> str:
    """Return a time as the local store writes it (UTC, seconds)."""
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def _into_postgres(source: NewsIndex, store: PgStore, encoder: str, dim: int) -> TransferReport:
    n_articles = n_passages = 0
    with store.transaction() as con:
        con.execute("SET LOCAL statement_timeout = 0")  # one transaction for the whole copy
        store.set_meta("encoder", encoder, con)
        store.set_meta("dim", str(dim), con)
        store.set_dimension(con, dim, index=False)
        # The postings are written once, in key order, after the passages (see fill_postings).
        con.execute("ALTER TABLE passages DISABLE TRIGGER passages_postings_added")
        with con.cursor() as cur:
            for rows in _articles(source):
                cur.executemany(
                    "INSERT INTO articles (id, url, title, source, published, published_at, language, text,"
                    " content_hash, duplicate_of, fetched_at, added_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            r["id"],
                            r["url"],
                            r["title"],
                            r["source"],
                            r["published"],
                            _time(r["published"]),
                            r["language"],
                            r["text"],
                            r["content_hash"],
                            r["duplicate_of"],
                            r["fetched_at"],
                            _time(r["added_at"]),
                        )
                        for r in rows
                    ],
                )
                n_articles += len(rows)
            for batch in _passages(source):
                tokens = tokenize([p[5] for p in batch])  # the passage's own text, as at insert
                # One COPY per batch: the corpus_stats trigger runs once per batch.
                with cur.copy(
                    'COPY passages (id, article_id, ordinal, start, "end", text, terms, n_terms, embedding) FROM STDIN'
                ) as copy:
                    for (pid, aid, ordinal, start, end, text, vec, _), toks in zip(batch, tokens, strict=True):
                        copy.write_row(
                            (pid, aid, ordinal, start, end, text, terms_literal(toks), len(toks), vector_literal(vec))
                        )
                sentences = [(p[0], p[7]) for p in batch if p[7] is not None]
                if sentences:
                    cur.executemany("INSERT INTO passage_sentences (passage_id, sentences) VALUES (%s, %s)", sentences)
                n_passages += len(batch)
            questions, feedback = _log(source)
            cur.executemany(
                "INSERT INTO questions (id, asked_at, question, channel, chat_id, user_id, answered, passage_ids)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                questions,
            )
            cur.executemany(
                "INSERT INTO feedback (id, question_id, value, chat_id, user_id, passage_ids, at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                feedback,
            )
        con.execute("ALTER TABLE passages ENABLE TRIGGER passages_postings_added")
        store.fill_postings(con)
        # New rows continue after the copied ids; the HNSW index is built once, over all rows.
        for table in ("passages", "questions", "feedback"):
            con.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST(max(id), 1)) FROM {table}"  # noqa: S608
            )
        store.build_vector_index(con)
    # Vacuum the copy once, so that BM25 reads the postings from their index alone (index-only
    # scans need the visibility map), and the planner has statistics.
    with store.connection() as con:
        timeout = con.execute("SHOW statement_timeout").fetchone()[0]
        con.execute("SET statement_timeout = 0")
        try:
            con.execute("VACUUM (ANALYZE) postings, term_stats, passages, corpus_stats")
        finally:
            con.execute("SELECT set_config('statement_timeout', %s, false)", (timeout,))
    return TransferReport(n_articles, n_passages, len(questions), len(feedback))


def _into_local(source: NewsIndex, target: NewsIndex, encoder: str, dim: int) -> TransferReport:
    n_articles = n_passages = 0
    store = target.store
    with store.transaction() as con:
        store.set_meta("encoder", encoder, con)
        store.set_meta("dim", str(dim), con)
        marks = ", ".join("?" * len(_COLUMNS))
        for rows in _articles(source):
            con.executemany(
                f"INSERT INTO articles ({', '.join(_COLUMNS)}) VALUES ({marks})",  # noqa: S608
                [tuple(r[c] for c in _COLUMNS) for r in rows],
            )
            n_articles += len(rows)
        for batch in _passages(source):
            con.executemany(
                _LOCAL_PASSAGE,
                [
                    (pid, aid, ordinal, start, end, text, vec.astype(np.float32).tobytes(), sent)
                    for pid, aid, ordinal, start, end, text, vec, sent in batch
                ],
            )
            n_passages += len(batch)
        questions, feedback = _log(source)
        con.executemany(
            "INSERT INTO questions (id, asked_at, question, channel, chat_id, user_id, answered, passage_ids)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, _iso(t), q, ch, c, u, int(a), json.dumps(p)) for i, t, q, ch, c, u, a, p in questions],
        )
        con.executemany(
            "INSERT INTO feedback (id, question_id, value, chat_id, user_id, passage_ids, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(i, q, v, c, u, json.dumps(p), _iso(t)) for i, q, v, c, u, p, t in feedback],
        )
    return TransferReport(n_articles, n_passages, len(questions), len(feedback))
