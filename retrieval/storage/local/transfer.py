"""The local backend's copy out and in (``newsqa migrate``): rows as stored, nothing embedded again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone

import numpy as np

from retrieval.errors import StoreError
from retrieval.storage.base import ArticleRow, CorpusDump, FeedbackRow, PassageRow, QuestionRow, TransferReport
from retrieval.storage.local.store import Store

__all__ = ["dump_store", "load_store"]

BATCH = 2000
ARTICLE_COLUMNS = (
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


def dump_store(store: Store) -> CorpusDump:
    """Return the whole store, read in batches as the dump is consumed."""
    encoder, dim = store.get_meta("encoder"), store.get_meta("dim")
    if encoder is None or dim is None:
        raise StoreError("the source holds no articles yet; nothing to migrate")
    questions, feedback = _log(store)
    return CorpusDump(encoder, int(dim), _articles(store), _passages(store), questions, feedback)


def _articles(store: Store) -> Iterator[list[ArticleRow]]:
    with store.connection() as con:
        cur = con.execute(f"SELECT {', '.join(ARTICLE_COLUMNS)} FROM articles ORDER BY added_at, id")  # noqa: S608
        while rows := cur.fetchmany(BATCH):
            yield [ArticleRow(**dict(r)) for r in rows]


def _passages(store: Store) -> Iterator[list[PassageRow]]:
    last = -1
    while True:
        # Opening the store brought it to the current schema: the sentences column exists.
        with store.connection() as con:
            rows = con.execute(
                'SELECT id, article_id, ordinal, start, "end", text, embedding, sentences'
                " FROM passages WHERE id > ? ORDER BY id LIMIT ?",
                (last, BATCH),
            ).fetchall()
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
                np.frombuffer(r["embedding"], dtype=np.float32),
                r["sentences"],
            )
            for r in rows
        ]
        last = int(rows[-1]["id"])


def _stamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _iso(value: datetime) -> str:
    """Return a time as the store writes it (UTC, seconds)."""
    return value.astimezone(timezone.utc).isoformat(timespec="seconds")


def _log(store: Store) -> tuple[list[QuestionRow], list[FeedbackRow]]:
    with store.connection() as con:
        q_rows = con.execute(
            "SELECT id, asked_at, question, channel, chat_id, user_id, answered, passage_ids FROM questions ORDER BY id"
        ).fetchall()
        f_rows = con.execute(
            "SELECT id, question_id, value, chat_id, user_id, passage_ids, at FROM feedback ORDER BY id"
        ).fetchall()
    questions = [
        QuestionRow(int(r[0]), _stamp(r[1]), r[2], r[3], r[4], r[5], bool(r[6]), [int(p) for p in json.loads(r[7])])
        for r in q_rows
    ]
    feedback = [
        FeedbackRow(int(r[0]), int(r[1]), int(r[2]), r[3], r[4], [int(p) for p in json.loads(r[5])], _stamp(r[6]))
        for r in f_rows
    ]
    return questions, feedback


def load_store(store: Store, dump: CorpusDump) -> TransferReport:
    """Copy a dump into the empty store, in one transaction (the caller builds the indexes after)."""
    n_articles = n_passages = 0
    with store.transaction() as con:
        store.set_meta("encoder", dump.encoder, con)
        store.set_meta("dim", str(dump.dim), con)
        marks = ", ".join("?" * len(ARTICLE_COLUMNS))
        for rows in dump.articles:
            con.executemany(
                f"INSERT INTO articles ({', '.join(ARTICLE_COLUMNS)}) VALUES ({marks})",  # noqa: S608
                [tuple(getattr(r, c) for c in ARTICLE_COLUMNS) for r in rows],
            )
            n_articles += len(rows)
        for batch in dump.passages:
            con.executemany(
                'INSERT INTO passages (id, article_id, ordinal, start, "end", text, embedding, sentences)'
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.id,
                        p.article_id,
                        p.ordinal,
                        p.start,
                        p.end,
                        p.text,
                        p.vector.astype(np.float32).tobytes(),
                        p.sentences,
                    )
                    for p in batch
                ],
            )
            n_passages += len(batch)
        con.executemany(
            "INSERT INTO questions (id, asked_at, question, channel, chat_id, user_id, answered, passage_ids)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    q.id,
                    _iso(q.asked_at),
                    q.question,
                    q.channel,
                    q.chat_id,
                    q.user_id,
                    int(q.answered),
                    json.dumps(q.passage_ids),
                )
                for q in dump.questions
            ],
        )
        con.executemany(
            "INSERT INTO feedback (id, question_id, value, chat_id, user_id, passage_ids, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (f.id, f.question_id, f.value, f.chat_id, f.user_id, json.dumps(f.passage_ids), _iso(f.at))
                for f in dump.feedback
            ],
        )
    return TransferReport(n_articles, n_passages, len(dump.questions), len(dump.feedback))
