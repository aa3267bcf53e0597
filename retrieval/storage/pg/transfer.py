"""The PostgreSQL backend's copy out and in (``newsqa migrate``): rows as stored, nothing embedded again.

A load runs in one transaction: the articles, the passages (one COPY per batch, with their
terms made by newsqa's tokenizer and their postings written once, in key order, afterwards), the
questions log and the feedback with their ids; then the HNSW index is built once over all rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

import numpy as np

from retrieval.errors import StoreError
from retrieval.search.tokens import tokenize
from retrieval.storage.base import ArticleRow, CorpusDump, FeedbackRow, PassageRow, QuestionRow, TransferReport
from retrieval.storage.pg.literals import terms_literal, vector_literal
from retrieval.storage.pg.store import PgStore

__all__ = ["dump_database", "load_database"]

BATCH = 2000
_COLUMNS = "id, url, title, source, published, language, text, content_hash, duplicate_of, fetched_at, added_at"


def dump_database(store: PgStore) -> CorpusDump:
    """Return the whole database, read in batches as the dump is consumed."""
    encoder, dim = store.get_meta("encoder"), store.get_meta("dim")
    if encoder is None or dim is None:
        raise StoreError("the source holds no articles yet; nothing to migrate")
    questions = [
        QuestionRow(
            r["id"],
            r["asked_at"],
            r["question"],
            r["channel"],
            r["chat_id"],
            r["user_id"],
            r["answered"],
            [int(p) for p in r["passage_ids"]],
        )
        for r in store._rows(
            "SELECT id, asked_at, question, channel, chat_id, user_id, answered, passage_ids"
            " FROM questions ORDER BY id",
            read_only=False,
        )
    ]
    feedback = [
        FeedbackRow(
            r["id"],
            r["question_id"],
            r["value"],
            r["chat_id"],
            r["user_id"],
            [int(p) for p in r["passage_ids"]],
            r["at"],
        )
        for r in store._rows(
            "SELECT id, question_id, value, chat_id, user_id, passage_ids, at FROM feedback ORDER BY id",
            read_only=False,
        )
    ]
    return CorpusDump(encoder, int(dim), _articles(store), _passages(store), questions, feedback)


def _articles(store: PgStore) -> Iterator[list[ArticleRow]]:
    sql = f"SELECT {_COLUMNS} FROM articles ORDER BY added_at, id"  # noqa: S608
    with store.db.connection() as con, con.cursor(row_factory=store.db.dict_row) as cur:
        cur.execute(sql)
        while rows := cur.fetchmany(BATCH):
            yield [ArticleRow(**{**r, "added_at": r["added_at"].isoformat()}) for r in rows]


def _passages(store: PgStore) -> Iterator[list[PassageRow]]:
    last = -1
    while True:
        rows = store._rows(
            'SELECT p.id, p.article_id, p.ordinal, p.start, p."end", p.text, p.embedding::real[] AS embedding,'
            " s.sentences FROM passages p LEFT JOIN passage_sentences s ON s.passage_id = p.id"
            " WHERE p.id > %s ORDER BY p.id LIMIT %s",
            (last, BATCH),
            read_only=False,
        )
        if not rows:
            return
        yield [
            PassageRow(
                int(r["id"]),
                r["article_id"],
                r["ordinal"],
                r["start"],
                r["end"],
                r["text"],
                np.asarray(r["embedding"], dtype=np.float32),
                None if r["sentences"] is None else bytes(r["sentences"]),
            )
            for r in rows
        ]
        last = int(rows[-1]["id"])


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def load_database(store: PgStore, dump: CorpusDump) -> TransferReport:
    """Copy a dump into the empty database (the caller holds the writer lock)."""
    n_articles = n_passages = 0
    with store.transaction() as con:
        con.execute("SET LOCAL statement_timeout = 0")  # one transaction for the whole copy
        store.set_meta("encoder", dump.encoder, con)
        store.set_meta("dim", str(dump.dim), con)
        store.set_dimension(con, dump.dim, index=False)
        # The postings are written once, in key order, after the passages (see fill_postings).
        con.execute("ALTER TABLE passages DISABLE TRIGGER passages_postings_added")
        with con.cursor() as cur:
            for rows in dump.articles:
                cur.executemany(
                    "INSERT INTO articles (id, url, title, source, published, published_at, language, text,"
                    " content_hash, duplicate_of, fetched_at, added_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            r.id,
                            r.url,
                            r.title,
                            r.source,
                            r.published,
                            _time(r.published),
                            r.language,
                            r.text,
                            r.content_hash,
                            r.duplicate_of,
                            r.fetched_at,
                            _time(r.added_at),
                        )
                        for r in rows
                    ],
                )
                n_articles += len(rows)
            for batch in dump.passages:
                tokens = tokenize([p.text for p in batch])  # the passage's own text, as at insert
                # One COPY per batch: the corpus_stats trigger runs once per batch.
                with cur.copy(
                    'COPY passages (id, article_id, ordinal, start, "end", text, terms, n_terms, embedding) FROM STDIN'
                ) as copy:
                    for p, toks in zip(batch, tokens, strict=True):
                        copy.write_row(
                            (
                                p.id,
                                p.article_id,
                                p.ordinal,
                                p.start,
                                p.end,
                                p.text,
                                terms_literal(toks),
                                len(toks),
                                vector_literal(p.vector),
                            )
                        )
                sentences = [(p.id, p.sentences) for p in batch if p.sentences is not None]
                if sentences:
                    cur.executemany("INSERT INTO passage_sentences (passage_id, sentences) VALUES (%s, %s)", sentences)
                n_passages += len(batch)
            cur.executemany(
                "INSERT INTO questions (id, asked_at, question, channel, chat_id, user_id, answered, passage_ids)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (q.id, q.asked_at, q.question, q.channel, q.chat_id, q.user_id, q.answered, q.passage_ids)
                    for q in dump.questions
                ],
            )
            cur.executemany(
                "INSERT INTO feedback (id, question_id, value, chat_id, user_id, passage_ids, at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(f.id, f.question_id, f.value, f.chat_id, f.user_id, f.passage_ids, f.at) for f in dump.feedback],
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
    return TransferReport(n_articles, n_passages, len(dump.questions), len(dump.feedback))
