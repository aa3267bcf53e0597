"""A storage backend written for the tests only: everything in memory, nothing from the local backend.

It implements ``retrieval.storage.base.Backend`` with plain dicts, a brute-force vector search
(numpy) and a BM25 index rebuilt from the rows after each write, and it passes the same contract
suite as the local and PostgreSQL backends (the tests that take ``make_index``, ``make_config`` or
``sample_index``): the protocol is the whole seam between the core and its storage.

Stores are kept per data directory for the life of the process, so two indexes opened on one
config share one store, as two processes share a data directory.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from retrieval.config import Config
from retrieval.domain import Article, Passage
from retrieval.errors import EmptyIndexError, NotFoundError, StoreError
from retrieval.ingest.cache import CacheRow, Validators
from retrieval.models.sentvecs import SentenceVectors
from retrieval.query import Query
from retrieval.search.hybrid import HybridRetriever
from retrieval.search.lexical import LexicalIndex
from retrieval.storage.base import (
    ArticleRow,
    CheckReport,
    CorpusDump,
    FeedbackRow,
    PassageRow,
    QuestionRow,
    SourceInfo,
    TransferReport,
    UsageStats,
    passage_problems,
)
from retrieval.storage.rows import parse_time

NAME = "memory"


@dataclass
class _Row:
    article: Article
    digest: str
    duplicate_of: str | None
    added_at: str


@dataclass
class _Data:
    """The rows of one store; a transaction works on a copy and swaps it in when it commits."""

    articles: dict[str, _Row] = field(default_factory=dict)
    passages: dict[int, tuple[Passage, np.ndarray, SentenceVectors | None]] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    next_id: int = 1


@dataclass
class _Store:
    data: _Data = field(default_factory=_Data)
    generation: int = 0
    writer: threading.Lock = field(default_factory=threading.Lock)
    questions: list[QuestionRow] = field(default_factory=list)
    feedback: list[FeedbackRow] = field(default_factory=list)
    fetches: dict[str, tuple[CacheRow, datetime]] = field(default_factory=dict)
    locks: dict[str, object] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)


_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


def open_backend(config: Config, *, create: bool = False) -> MemoryBackend:
    """Open the store of the configured data directory (made with ``create``)."""
    key = str(config.data_path.resolve())
    with _STORES_LOCK:
        if key not in _STORES:
            if not create:
                raise EmptyIndexError(f"No index in {config.data_path} — run `newsqa ingest PATH` first")
            _STORES[key] = _Store()
        return MemoryBackend(config, _STORES[key], key)


class _VectorSearch:
    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids, self.vectors = ids, vectors
        self.row = {int(i): n for n, i in enumerate(ids)}

    def search(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.vectors @ vector if len(self.ids) else np.empty(0, np.float32)
        order = np.argsort(-scores, kind="stable")[:k]
        return self.ids[order], scores[order]

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        return np.vstack([self.vectors[self.row[int(i)]] for i in ids])


class _Rows:
    def __init__(self, data: _Data) -> None:
        self.data = data

    def passages(self, ids: Iterable[int]) -> dict[int, Passage]:
        return {int(i): self.data.passages[int(i)][0] for i in ids if int(i) in self.data.passages}

    def articles(self, ids: Iterable[str]) -> dict[str, Article]:
        return {i: self.data.articles[i].article for i in ids if i in self.data.articles}


class _Transaction:
    def __init__(self, data: _Data) -> None:
        self.data = data

    def original_with_hash(self, digest: str) -> str | None:
        return next(
            (r.article.id for r in self.data.articles.values() if r.digest == digest and not r.duplicate_of), None
        )

    def put_article(self, article: Article, digest: str, duplicate_of: str | None) -> None:
        old = self.data.articles.get(article.id)
        added = old.added_at if old else datetime.now(UTC).isoformat()
        self.data.articles[article.id] = _Row(article, digest, duplicate_of, added)

    def delete_passages(self, article_id: str) -> None:
        for pid in [p for p, (passage, _, _) in self.data.passages.items() if passage.article_id == article_id]:
            del self.data.passages[pid]

    def add_passages(
        self,
        article_id: str,
        spans: Sequence[tuple[int, int, int, str]],
        vectors: np.ndarray,
        sentences: Sequence[SentenceVectors | None],
    ) -> None:
        for (ordinal, start, end, text), vector, sent in zip(spans, vectors, sentences, strict=True):
            pid = self.data.next_id
            self.data.next_id += 1
            self.data.passages[pid] = (Passage(pid, article_id, ordinal, start, end, text), vector.copy(), sent)

    def remove_article(self, article_id: str) -> None:
        copies = sorted((r.added_at, r.article.id) for r in self.data.articles.values() if r.duplicate_of == article_id)
        if copies:
            heir = copies[0][1]
            for pid, (p, vector, sent) in list(self.data.passages.items()):
                if p.article_id == article_id:
                    self.data.passages[pid] = (Passage(pid, heir, p.ordinal, p.start, p.end, p.text), vector, sent)
            for row in self.data.articles.values():
                if row.duplicate_of == article_id:
                    row.duplicate_of = None if row.article.id == heir else heir
        else:
            self.delete_passages(article_id)
        del self.data.articles[article_id]


class _Writer:
    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend

    def article_state(self, article_id: str) -> tuple[str, str | None] | None:
        row = self.backend.store.data.articles.get(article_id)
        return None if row is None else (row.digest, row.duplicate_of)

    def record_encoder(self, identity: str, dim: int) -> None:
        with self.transaction() as tx:
            tx.data.meta.update(encoder=identity, dim=str(dim))

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        store = self.backend.store
        draft = copy.deepcopy(store.data)
        yield _Transaction(draft)
        with store.guard:
            store.generation += 1
            draft.meta.update(generation=str(store.generation), updated_at=datetime.now(UTC).isoformat())
            store.data = draft


class _Lease:
    def __init__(self, name: str, store: _Store) -> None:
        self.name, self.store = name, store

    def alive(self) -> bool:
        return self.store.locks.get(self.name) is self

    def release(self) -> None:
        with self.store.guard:
            if self.store.locks.get(self.name) is self:
                del self.store.locks[self.name]


class _Coordinator:
    def __init__(self, store: _Store) -> None:
        self.store = store

    def try_lock(self, name: str) -> _Lease | None:
        with self.store.guard:
            if name in self.store.locks:
                return None
            lease = _Lease(name, self.store)
            self.store.locks[name] = lease
            return lease

    def holder(self, name: str) -> int | None:
        return os.getpid() if name in self.store.locks else None


class _FetchCache:
    def __init__(self, store: _Store) -> None:
        self.store = store

    def get(self, url: str) -> CacheRow | None:
        found = self.store.fetches.get(url)
        return found[0] if found else None

    def fetched_at(self, url: str) -> datetime | None:
        found = self.store.fetches.get(url)
        return found[1] if found else None

    def put(self, rows: list[CacheRow]) -> None:
        now = datetime.now(UTC)
        with self.store.guard:
            self.store.fetches.update({r.url: (r, now) for r in rows})

    def validators_for_page(self, url: str) -> Validators | None:
        row = self.get(url)
        if row is None or row.article_id is None or row.article_id not in self.store.data.articles:
            return None
        return row.validators


class MemoryBackend:
    """A store in this process's memory."""

    def __init__(self, config: Config, store: _Store, key: str) -> None:
        self.config = config
        self.store = store
        self.where = key
        self._seen = store.generation
        self._snapshot: tuple[int, HybridRetriever] | None = None

    def get_meta(self, key: str) -> str | None:
        return self.store.data.meta.get(key)

    def retriever(self) -> HybridRetriever:
        data, generation = self.store.data, self.store.generation
        if self._snapshot is None or self._snapshot[0] != generation:
            ids = np.array(sorted(data.passages), dtype=np.int64)
            dim = int(data.meta.get("dim", "1"))
            vectors = np.vstack([data.passages[int(i)][1] for i in ids]) if len(ids) else np.empty((0, dim), np.float32)
            lexical = LexicalIndex.build(ids, [data.passages[int(i)][0].text for i in ids], generation)
            self._snapshot = (
                generation,
                HybridRetriever(_Rows(data), _VectorSearch(ids, vectors), lexical, self.config.search),
            )
        return self._snapshot[1]

    def refresh(self) -> bool:
        changed = self.store.generation != self._seen
        self._seen = self.store.generation
        return changed

    def sentence_vectors(self, passage_ids: Iterable[int]) -> dict[int, SentenceVectors]:
        rows = self.store.data.passages
        return {int(i): sv for i in passage_ids if int(i) in rows and (sv := rows[int(i)][2]) is not None}

    def copies_of(self, article_ids: Iterable[str]) -> dict[str, list[Article]]:
        wanted = set(article_ids)
        out: dict[str, list[Article]] = {}
        # As SQL's ORDER BY published, url: undated first.
        rows = sorted(
            self.store.data.articles.values(),
            key=lambda r: (r.article.published.isoformat() if r.article.published else "", r.article.url),
        )
        for row in rows:
            if row.duplicate_of in wanted:
                out.setdefault(row.duplicate_of, []).append(row.article)
        return out

    def find_article(self, id_or_url: str) -> Article:
        for row in self.store.data.articles.values():
            if id_or_url in (row.article.id, row.article.url):
                return row.article
        raise NotFoundError(f"no article with id or URL {id_or_url!r}; see `newsqa sources`")

    def sources(self, limit: int | None, offset: int) -> list[SourceInfo]:
        data = self.store.data
        # Newest first (by publication, else by when it was added), ties by id.
        rows = sorted(data.articles.values(), key=lambda r: r.article.id)
        rows.sort(key=lambda r: r.article.published.isoformat() if r.article.published else r.added_at, reverse=True)
        rows = rows[offset:] if limit is None else rows[offset : offset + limit]
        count = {}
        for p, _, _ in data.passages.values():
            count[p.article_id] = count.get(p.article_id, 0) + 1
        return [SourceInfo(r.article, count.get(r.duplicate_of or r.article.id, 0)) for r in rows]

    def counts(self) -> tuple[int, int]:
        return len(self.store.data.articles), len(self.store.data.passages)

    def articles_without_passages(self) -> list[str]:
        data = self.store.data
        held = {p.article_id for p, _, _ in data.passages.values()}
        return sorted(i for i, r in data.articles.items() if r.duplicate_of is None and i not in held)

    def any_article(self, query: Query) -> bool:
        return any(
            query.admits(r.article.source, r.article.url, r.article.published)
            for r in self.store.data.articles.values()
        )

    @contextmanager
    def writer(self, on_wait: Callable[[int | None], None] | None = None) -> Iterator[_Writer]:
        if not self.store.writer.acquire(blocking=False):
            if on_wait is not None:
                on_wait(os.getpid())
            if not self.store.writer.acquire(timeout=600):
                raise StoreError("another newsqa process is writing to the store; try again when it is done")
        try:
            yield _Writer(self)
        finally:
            self.store.writer.release()

    def check(self, repair: bool = False) -> CheckReport:
        data = self.store.data
        rows = [
            (
                pid,
                p.article_id,
                p.start,
                p.end,
                p.text,
                data.articles[p.article_id].article.text if p.article_id in data.articles else None,
            )
            for pid, (p, _, _) in sorted(data.passages.items())
        ]
        # No index can drift from these rows: there is nothing to repair beyond them.
        return CheckReport(len(data.articles), len(data.passages), tuple(passage_problems(rows)))

    def coordinator(self) -> _Coordinator:
        return _Coordinator(self.store)

    def fetch_cache(self) -> _FetchCache:
        return _FetchCache(self.store)

    def log_question(
        self,
        question: str,
        channel: str,
        chat_id: int | None,
        user_id: int | None,
        answered: bool,
        passage_ids: Sequence[int],
    ) -> int:
        with self.store.guard:
            qid = len(self.store.questions) + 1
            self.store.questions.append(
                QuestionRow(qid, datetime.now(UTC), question, channel, chat_id, user_id, answered, list(passage_ids))
            )
            return qid

    def get_question(self, question_id: int) -> str | None:
        return next((q.question for q in self.store.questions if q.id == question_id), None)

    def record_feedback(
        self, question_id: int, value: int, chat_id: int | None, user_id: int | None, passage_ids: Sequence[int]
    ) -> None:
        if value not in (1, -1):
            raise ValueError("feedback is +1 or -1")
        with self.store.guard:
            fid = len(self.store.feedback) + 1
            self.store.feedback.append(
                FeedbackRow(fid, question_id, value, chat_id, user_id, list(passage_ids), datetime.now(UTC))
            )

    def usage(self) -> UsageStats:
        q, f = self.store.questions, self.store.feedback
        return UsageStats(
            len(q), sum(not x.answered for x in q), sum(x.value == 1 for x in f), sum(x.value == -1 for x in f)
        )

    def dump(self) -> CorpusDump:
        data = self.store.data
        if "encoder" not in data.meta:
            raise StoreError("the source holds no articles yet; nothing to migrate")

        def article(r: _Row) -> ArticleRow:
            a = r.article
            return ArticleRow(
                a.id,
                a.url,
                a.title,
                a.source,
                a.published.isoformat() if a.published else None,
                a.language,
                a.text,
                r.digest,
                r.duplicate_of,
                a.fetched_at.isoformat() if a.fetched_at else None,
                r.added_at,
            )

        passages = [
            PassageRow(pid, p.article_id, p.ordinal, p.start, p.end, p.text, v, None if s is None else s.pack())
            for pid, (p, v, s) in sorted(data.passages.items())
        ]
        return CorpusDump(
            data.meta["encoder"],
            int(data.meta["dim"]),
            iter([[article(r) for r in data.articles.values()]]),
            iter([passages]),
            list(self.store.questions),
            list(self.store.feedback),
        )

    def load(self, dump: CorpusDump) -> TransferReport:
        data = _Data(meta={"encoder": dump.encoder, "dim": str(dump.dim)})
        for batch in dump.articles:
            for r in batch:
                article = Article(
                    r.id,
                    r.url,
                    r.text,
                    r.title,
                    r.source,
                    parse_time(r.published),
                    r.language,
                    parse_time(r.fetched_at),
                )
                data.articles[r.id] = _Row(article, r.content_hash, r.duplicate_of, r.added_at)
        for rows in dump.passages:
            for p in rows:
                sentences = None if p.sentences is None else SentenceVectors.unpack(p.sentences)
                data.passages[p.id] = (
                    Passage(p.id, p.article_id, p.ordinal, p.start, p.end, p.text),
                    p.vector,
                    sentences,
                )
        data.next_id = max(data.passages, default=0) + 1
        with self.store.guard:
            self.store.generation += 1
            data.meta["generation"] = str(self.store.generation)
            self.store.data = data
            self.store.questions[:] = dump.questions
            self.store.feedback[:] = dump.feedback
        return TransferReport(len(data.articles), len(data.passages), len(dump.questions), len(dump.feedback))

    def close(self) -> None:
        """Nothing to let go."""
