"""Indexing articles: skip the unchanged, record copies, split, embed, and write in batches.

Written once for every backend: the backend's ``Writer`` holds its lock and keeps its indexes in
step with each committed batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from retrieval.config import Config
from retrieval.domain import Article
from retrieval.ingest.sentences import sentence_spans
from retrieval.ingest.splitter import split_article
from retrieval.models.encoder import Encoder
from retrieval.models.sentvecs import SentenceVectors
from retrieval.storage.base import Backend, Writer
from retrieval.urls import content_hash
from retrieval.wording import plural

__all__ = ["IngestReport", "index_articles", "index_text"]


@dataclass
class IngestReport:
    """What one ingest did."""

    added: int = 0
    updated: int = 0
    skipped: int = 0
    duplicates: int = 0
    repeated: int = 0
    passages: int = 0
    # Words of the article texts split into those passages (copies and unchanged ones not counted).
    words: int = 0
    # Seconds spent working, and before that waiting for another writer (not in the rates).
    seconds: float = 0.0
    waited: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def articles(self) -> int:
        """Return how many articles of the input were dealt with so far (stored, copies or unchanged)."""
        return self.added + self.updated + self.skipped + self.duplicates

    def summary(self) -> str:
        """Return the one-line summary printed after an ingest: counts, then passages/s and words/s."""
        rate = self.passages / self.seconds if self.seconds > 0 else 0.0
        words_rate = self.words / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.added} added, {self.updated} updated, {self.skipped - self.repeated} unchanged, "
            f"{plural(self.duplicates, 'copy')} of stored articles; {plural(self.passages, 'passage')} "
            f"({plural(self.words, 'word', grouped=True)}) in {self.seconds:.1f} s "
            f"({rate:.1f} passages/s, {words_rate:,.0f} words/s)"
        )
        if self.waited >= 0.1:
            text += f"; waited {self.waited:.1f} s for another writer first"
        if self.repeated:
            text += f"; {self.repeated} repeated an article already in this input (first kept)"
        if self.problems:
            text += f"; {plural(len(self.problems), 'problem')}"
        return text


def index_text(title: str | None, text: str) -> str:
    """Return what is embedded for a passage: the article title gives later passages their context.

    BM25 indexes the passage alone: the title repeated in every passage of an article would lift
    them all alike on the title's terms and crowd out the one passage that holds the answer
    (RealTimeQA lexical Recall@5 0.776 with the title, 0.800 without).
    """
    return f"{title}\n{text}" if title else text


def index_articles(
    backend: Backend,
    encoder: Callable[[], Encoder],
    config: Config,
    articles: Iterable[Article],
    progress: Callable[[int], None] | None = None,
    batch_articles: int = 64,
    *,
    resplit: Collection[str] = (),
    on_batch: Callable[[IngestReport], None] | None = None,
    on_wait: Callable[[int | None], None] | None = None,
) -> IngestReport:
    """Add or update articles; unchanged ones are skipped, exact copies recorded as copies.

    ``encoder`` is called (and the model loaded) only when something needs embedding. Articles
    whose ids are in ``resplit`` are split again even when unchanged; ``on_batch`` gets the report
    after each committed batch; ``on_wait`` is told (once) when another writer holds the lock.
    """
    report = IngestReport()
    loaded: list[Encoder] = []
    asked = time.perf_counter()
    with backend.writer(on_wait=on_wait) as writer:
        started = time.perf_counter()
        report.waited = started - asked
        # An id repeated within one input (two texts under one URL) keeps its first text, so
        # that ingesting the same input again changes nothing.
        seen_ids: set[str] = set()
        try:
            for batch in _batches(articles, batch_articles):
                _index_batch(writer, backend, encoder, loaded, config, batch, report, progress, seen_ids, resplit)
                if on_batch is not None:
                    report.seconds = time.perf_counter() - started
                    on_batch(report)
        finally:
            for model in loaded:
                model.set_threads(config.model.query_threads)
    report.seconds = time.perf_counter() - started
    return report


def _index_batch(
    writer: Writer,
    backend: Backend,
    encoder: Callable[[], Encoder],
    loaded: list[Encoder],
    config: Config,
    batch: list[Article],
    report: IngestReport,
    progress: Callable[[int], None] | None,
    seen_ids: set[str],
    resplit: Collection[str] = (),
) -> None:
    plan: list[tuple[Article, str, str | None, bool]] = []  # article, digest, duplicate_of, replaces
    seen: dict[str, str] = {}
    for article in batch:
        if article.id in seen_ids:
            report.skipped += 1
            report.repeated += 1
            continue
        seen_ids.add(article.id)
        digest = content_hash(article.text)
        state = writer.article_state(article.id)
        if state is not None and state[0] == digest and article.id not in resplit:
            report.skipped += 1
            continue
        plan.append((article, digest, seen.get(digest), state is not None))
        seen.setdefault(digest, article.id)
    if not plan:
        return
    model = encoder()
    if not loaded:
        if backend.get_meta("encoder") is None:
            writer.record_encoder(model.identity, model.dim)
        model.set_threads(config.model.ingest_threads)
        loaded.append(model)
    to_embed = [(a, split_article(a.text, config.passages)) for a, _, dup, _ in plan if dup is None]
    bodies = [a.text[s.start : s.end] for a, spans in to_embed for s in spans]
    titles = [a.title for a, spans in to_embed for _ in spans]
    sentences = _sentence_vectors(model, titles, bodies, progress)
    vecs = np.vstack([v for v, _ in sentences]) if bodies else np.empty((0, model.dim), np.float32)
    with writer.transaction() as tx:
        pos = 0
        spans_of = {a.id: spans for a, spans in to_embed}
        for article, digest, dup, replaces in plan:
            original = dup or tx.original_with_hash(digest)
            if original == article.id:
                original = None
            if replaces:
                tx.delete_passages(article.id)
            tx.put_article(article, digest, original)
            if original is not None:
                report.duplicates += 1
                if article.id in spans_of:
                    pos += len(spans_of[article.id])  # embedded before the copy was known
                continue
            spans = spans_of[article.id]
            rows = [(s.ordinal, s.start, s.end, article.text[s.start : s.end]) for s in spans]
            extra = [sv for _, sv in sentences[pos : pos + len(spans)]]
            tx.add_passages(article.id, rows, vecs[pos : pos + len(spans)], extra)
            pos += len(spans)
            report.passages += len(spans)
            report.words += len(article.text.split())
            if replaces:
                report.updated += 1
            else:
                report.added += 1


def _sentence_vectors(
    encoder: Encoder,
    titles: Sequence[str | None],
    bodies: Sequence[str],
    progress: Callable[[int], None] | None,
) -> list[tuple[np.ndarray, SentenceVectors]]:
    """Embed passages as indexed (title first); return each one's vector and its sentences' vectors.

    Sentence spans are found in the passage text and stored relative to it.
    """
    if not bodies:
        return []
    texts = [index_text(t, b) for t, b in zip(titles, bodies, strict=True)]
    relative = [sentence_spans(b) for b in bodies]
    heads = [len(t) - len(b) for t, b in zip(texts, bodies, strict=True)]
    spans = [[(h + a, h + b) for a, b in rel] for h, rel in zip(heads, relative, strict=True)]
    vectors, pooled = encoder.embed_passages(texts, spans, progress=progress)
    return [
        (vector, SentenceVectors(tuple(rel), rows)) for vector, rel, rows in zip(vectors, relative, pooled, strict=True)
    ]


def _batches(items: Iterable[Article], size: int) -> Iterator[list[Article]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
