"""Copy a corpus between the local data directory and a PostgreSQL database, either way.

Articles, passages (same ids, offsets and text), their vectors and sentence vectors are copied
as stored: nothing is embedded again. The target must be empty, and receives the source's
encoder identity, so a mismatched model is refused there as it would have been here.
"""

from __future__ import annotations

import dataclasses
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
from retrieval.store import index_text

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
            f"the target already holds {articles} articles and {passages} passages; migrate into an empty one"
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


def _passages(source: NewsIndex) -> Iterator[list[tuple[int, str, int, int, int, str, np.ndarray, bytes | None]]]:
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
                (
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
        else:
            # Opening the store brought it to the current schema: the sentences column exists.
            with source.store.connection() as con:
                rows = con.execute(
                    'SELECT id, article_id, ordinal, start, "end", text, embedding, sentences'
                    " FROM passages WHERE id > ? ORDER BY id LIMIT ?",
                    (last, _BATCH),
                ).fetchall()
            batch = [
                (
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
        if not batch:
            return
        last = batch[-1][0]
        yield batch


# -- writing ----------------------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _into_postgres(source: NewsIndex, store: PgStore, encoder: str, dim: int) -> TransferReport:
    n_articles = n_passages = 0
    titles: dict[str, str | None] = {}
    with store.transaction() as con:
        con.execute("SET LOCAL statement_timeout = 0")  # one transaction for the whole copy
        store.set_meta("encoder", encoder, con)
        store.set_meta("dim", str(dim), con)
        store.set_dimension(con, dim, index=False)
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
                titles.update((r["id"], r["title"]) for r in rows)
                n_articles += len(rows)
            for batch in _passages(source):
                tokens = tokenize([index_text(titles.get(p[1]), p[5]) for p in batch])
                cur.executemany(
                    'INSERT INTO passages (id, article_id, ordinal, start, "end", text, terms, n_terms, embedding)'
                    " VALUES (%s, %s, %s, %s, %s, %s, %s::tsvector, %s, %s::vector)",
                    [
                        (pid, aid, ordinal, start, end, text, terms_literal(toks), len(toks), vector_literal(vec))
                        for (pid, aid, ordinal, start, end, text, vec, _), toks in zip(batch, tokens, strict=True)
                    ],
                )
                sentences = [(p[0], p[7]) for p in batch if p[7] is not None]
                if sentences:
                    cur.executemany("INSERT INTO passage_sentences (passage_id, sentences) VALUES (%s, %s)", sentences)
                n_passages += len(batch)
        # New passages continue after the copied ids; the HNSW index is built once, over all rows.
        con.execute("SELECT setval(pg_get_serial_sequence('passages', 'id'), GREATEST(max(id), 1)) FROM passages")
        store.build_vector_index(con)
    return TransferReport(n_articles, n_passages)


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
    return TransferReport(n_articles, n_passages)
