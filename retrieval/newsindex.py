"""The core's one entry point: a data directory of articles that can be searched and asked."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice

import numpy as np

from retrieval.answering import build_answer, confidence_parts, no_match_reason, rank_groups
from retrieval.config import Config
from retrieval.encoder import Encoder, load_encoder
from retrieval.errors import EmptyIndexError, ModelMismatchError, StoreError
from retrieval.highlight import sentence_spans
from retrieval.lexical import LexicalIndex, tokenize
from retrieval.locking import writer_active, writer_lock
from retrieval.models import Answer, Article, Hit
from retrieval.query import Query, parse_question
from retrieval.search import Retriever, Scored, SearchStats, prefer_recent
from retrieval.sentvecs import SentenceVectors
from retrieval.splitter import split_article
from retrieval.store import SourceInfo, Store, UsageStats, index_text
from retrieval.urls import content_hash
from retrieval.vectorindex import FaissIndex
from retrieval.wording import plural

__all__ = ["CheckReport", "IndexStats", "IngestReport", "NewsIndex"]

log = logging.getLogger(__name__)

DB_NAME = "newsqa.sqlite3"
FAISS_NAME = "index.faiss"


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


@dataclass(frozen=True)
class IndexStats:
    """The size and make of the index."""

    articles: int
    passages: int
    model: str
    updated_at: datetime | None


@dataclass(frozen=True)
class CheckReport:
    """What ``check`` found; ``ok`` when store and indexes agree."""

    articles: int
    passages: int
    problems: tuple[str, ...]
    repaired: bool = False

    @property
    def ok(self) -> bool:
        """Return True when nothing is wrong."""
        return not self.problems


# Data directories (and the encoder settings adopted for them) already reported by _check_model.
_ADOPTED: set[tuple[str, str, str]] = set()


def _expected_identity(config: Config) -> str:
    m = config.model
    return f"{m.name}|{m.backend}|{m.quantization}"


def identities_compatible(stored: str, wanted: str) -> bool:
    """Return True if vectors stored under ``stored`` can be searched with the encoder ``wanted``.

    Identities are ``name|backend|quantize[|dim]``. fp32 torch and fp32 ONNX runs of one model
    give the same vectors (max difference 2e-7, identical top-10 in bench/bench_encoders.py), so
    they may share an index; int8 passage vectors differ and never mix with fp32 ones (an
    existing data directory keeps its own encoder instead, see ``NewsIndex._check_model``).
    """
    s, w = stored.split("|")[:3], wanted.split("|")[:3]
    if len(s) < 3 or len(w) < 3 or s[0] != w[0] or s[2] != w[2]:
        return False
    return s[1] == w[1] or (s[2] == "none" and {s[1], w[1]} <= {"torch", "onnx"})


class NewsIndex:
    """Articles, passages and their indexes in one data directory.

    Reading is thread-safe; writes take a lock shared by every process using the directory.
    """

    def __init__(self, config: Config, store: Store, encoder: Encoder | None = None) -> None:
        self.config = config
        self.folder = config.data_path
        self.store = store
        self._encoder = encoder
        self._lock = threading.RLock()
        self._vectors: FaissIndex | None = None
        self._lexical: LexicalIndex | None = None

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: Config, *, encoder: Encoder | None = None, create: bool = False) -> NewsIndex:
        """Open the data directory (or the configured database); with ``create`` make it when missing."""
        if config.storage.backend != "local":
            from retrieval.pg.index import open_database  # psycopg loads only for this backend

            return open_database(config, encoder=encoder, create=create)
        folder = config.data_path
        db = folder / DB_NAME
        if not db.exists():
            if not create:
                raise EmptyIndexError(f"No index in {folder} — run `newsqa ingest PATH` first")
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create data directory {folder}: {exc.strerror}") from None
        index = cls(config, Store(db, create=create), encoder)
        index._check_model()
        return index

    def _check_model(self) -> None:
        """Refuse a data directory built with another model; adopt its backend and quantization.

        A data directory keeps the encoder that built it: when only the backend or the
        quantization differ from the configuration (say the default changed since), the recorded
        ones are used for this directory, so its vectors and answers stay as they were.
        """
        stored = self.store.get_meta("encoder")
        if stored is None:
            return
        expected = _expected_identity(self.config)
        if identities_compatible(stored, expected):
            return
        name, backend, quant, dim = (stored.split("|") + ["?"] * 4)[:4]
        model = self.config.model
        if name == model.name and backend in ("onnx", "torch") and quant in ("none", "int8"):
            adopted = dataclasses.replace(model, quantize=quant)
            if not identities_compatible(stored, f"{name}|{adopted.backend}|{quant}"):
                adopted = dataclasses.replace(adopted, backend=backend)
            key = (str(self.folder), stored, expected)
            if key not in _ADOPTED:  # once per process, however often the directory is opened
                _ADOPTED.add(key)
                log.info(
                    "%s was built with backend %s, quantize %s: using backend %s, quantize %s for it "
                    "instead of the configured %s, %s",
                    self.folder,
                    backend,
                    quant,
                    adopted.backend,
                    adopted.quantize,
                    model.backend,
                    model.quantization,
                )
            self.config = dataclasses.replace(self.config, model=adopted)
            return
        raise ModelMismatchError(
            f"the index in {self.folder} was built with model {name!r} (backend {backend}, "
            f"quantize {quant}, {dim} dimensions), but the configuration asks for "
            f"{model.name!r} (backend {model.backend}, quantize {model.quantization}); "
            "use that model or another data directory"
        )

    @property
    def encoder(self) -> Encoder:
        """Return the encoder, loading it on first use."""
        with self._lock:
            if self._encoder is None:
                self._encoder = load_encoder(self.config.model)
            stored_dim = self.store.get_meta("dim")
            if stored_dim is not None and int(stored_dim) != self._encoder.dim:
                raise ModelMismatchError(
                    f"the index in {self.folder} holds {stored_dim}-dimensional vectors, "
                    f"the model makes {self._encoder.dim}"
                )
            return self._encoder

    def close(self) -> None:
        """Release the database connection of this thread."""
        self.store.close()

    def __enter__(self) -> NewsIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the indexes ---------------------------------------------------------------------------
    def _dim(self) -> int:
        dim = self.store.get_meta("dim")
        return int(dim) if dim is not None else self.encoder.dim

    def _load_indexes(self, save: bool, writing: bool = False) -> tuple[FaissIndex, LexicalIndex]:
        """Return the indexes, loading them from the files or rebuilding them from the store.

        Index files behind the store mean a writer is between batches (or died). While another
        process writes, a reader that already has a consistent snapshot keeps it (or takes newer
        files) rather than rebuilding on every question; a writer, or a reader when no writer is
        left, rebuilds stale indexes from the store.
        """
        with self._lock:
            gen = self.store.generation()
            vectors, lexical = self._vectors, self._lexical
            if vectors is not None and lexical is not None and vectors.generation == lexical.generation == gen:
                return vectors, lexical
            file_vectors = FaissIndex.load(self.folder / FAISS_NAME, self.config.index)
            file_lexical = LexicalIndex.load(self.folder)
            files_gen = (
                file_vectors.generation
                if file_vectors is not None
                and file_lexical is not None
                and file_vectors.generation == file_lexical.generation
                else -1
            )
            if files_gen == gen:
                assert file_vectors is not None and file_lexical is not None
                vectors, lexical = file_vectors, file_lexical
            elif file_lexical is None and file_vectors is not None and file_vectors.generation == gen:
                # Only BM25 is missing or in an older format: rebuild it alone, and keep it for
                # the next process unless a writer is busy (it saves its own when done).
                log.info("rebuilding the BM25 index of %s from the store", self.folder)
                vectors, lexical = self._rebuild(gen, file_vectors)
                self._save_lexical(lexical)
            elif not writing and vectors is not None and lexical is not None and writer_active(self.folder):
                if file_vectors is not None and file_lexical is not None and files_gen > vectors.generation:
                    vectors, lexical = file_vectors, file_lexical
            else:
                log.info("rebuilding the indexes of %s from the store", self.folder)
                vectors, lexical = self._rebuild(gen)
                if save:
                    self._save(vectors, lexical)
            # An approximate index reads exact vectors of its candidates from the store.
            vectors.exact_vectors = self.store.passage_vectors
            self._vectors, self._lexical = vectors, lexical
            return vectors, lexical

    def _snapshot(self) -> tuple[FaissIndex, LexicalIndex]:
        """Return the indexes answers are read from: the last consistent snapshot, once loaded."""
        with self._lock:
            if self._vectors is not None and self._lexical is not None:
                return self._vectors, self._lexical
        return self._load_indexes(save=False)

    def _rebuild(self, gen: int, vectors: FaissIndex | None = None) -> tuple[FaissIndex, LexicalIndex]:
        """Build both indexes from the store (BM25 only, when an up-to-date ``vectors`` is given)."""
        built = self._build_vectors(gen) if vectors is None else vectors
        lexical = LexicalIndex.build_batches(((ids, texts) for ids, texts, _ in self.store.iter_passages()), gen)
        return built, lexical

    def _build_vectors(self, gen: int) -> FaissIndex:
        """Build the vector index from the stored vectors: exact or approximate by its size."""
        count = self.store.counts()[1]
        batches = ((ids, vecs) for ids, _, vecs in self.store.iter_passages())
        vectors = FaissIndex.build(self._dim(), batches, count, gen, self.config.index)
        vectors.exact_vectors = self.store.passage_vectors
        return vectors

    def _updated_lexical(self, vectors: FaissIndex, gen: int) -> LexicalIndex:
        """Bring BM25 up to date with a write: a delta of the passages it changed, or a new build."""
        added, removed = vectors.changed_ids()
        current = self._lexical
        if (
            current is None
            or current.generation != vectors.origin_generation
            or not current.can_update(self.config.index, len(added) + len(removed))
        ):
            return self._rebuild(gen, vectors)[1]
        # Only passages still in the store (one added and removed again within the write is gone).
        passages = self.store.passages(added.tolist())
        kept = [int(i) for i in added if int(i) in passages]
        texts = [passages[i].text for i in kept]
        return current.updated(np.array(kept, dtype=np.int64), texts, removed, gen)

    def _save_lexical(self, lexical: LexicalIndex) -> None:
        try:
            with writer_lock(self.folder, wait=0):
                if self.store.generation() == lexical.generation:
                    lexical.save(self.folder)
        except (StoreError, OSError) as exc:  # a writer is busy, or the folder is read-only
            log.debug("BM25 index of %s not saved: %s", self.folder, exc)

    def _save(self, vectors: FaissIndex, lexical: LexicalIndex) -> None:
        vectors.save(self.folder / FAISS_NAME)
        lexical.save(self.folder)

    def refresh(self) -> bool:
        """Move to the newest consistent indexes if another process changed the data directory.

        Returns True when the indexes answers are read from changed.
        """
        with self._lock:
            before = self._vectors
            if before is None or before.generation == self.store.generation():
                return False
        after, _ = self._load_indexes(save=False)
        return after is not before

    def retriever(self) -> Retriever:
        """Return a retriever over the current indexes."""
        if self.store.get_meta("encoder") is None:
            raise EmptyIndexError(f"No articles in {self.folder} yet — run `newsqa ingest PATH` first")
        vectors, lexical = self._snapshot()
        return Retriever(self.store, vectors, lexical, self.config.search)

    # -- asking --------------------------------------------------------------------------------
    def search(self, question: str, k: int = 10, fusion: str | None = None) -> list[Hit]:
        """Return the top ``k`` passages for a question (no abstention, no collapsing)."""
        return [s.hit for s in self.hits_for(self.parse(question), k, fusion)]

    def ask(self, question: str, k: int | None = None, offset: int = 0, fusion: str | None = None) -> Answer:
        """Answer a question with up to ``k`` quotes, skipping the first ``offset`` ones."""
        k = self.config.search.k if k is None else k
        if k < 1:
            raise ValueError("k must be at least 1")
        stats = SearchStats()
        query, qvec, hits, idf = self._candidates(question, offset + k, fusion, stats)
        if not hits and query.filtered and not self.store.any_article(query):
            # Nothing was searched: say so, rather than that the articles do not answer.
            return Answer(question, (), False, no_match_reason(query))
        copies = self.store.copies_of(s.article.id for s in hits)
        stored = self.store.sentence_vectors(s.hit.passage.id for s in hits)
        return build_answer(
            question,
            query,
            hits,
            self.encoder,
            qvec,
            self.config.search,
            k,
            offset,
            copies,
            idf,
            stored,
            stats.contrast,
        )

    def rank(
        self, question: str, k: int = 10, fusion: str | None = None, stats: SearchStats | None = None
    ) -> list[Scored]:
        """Return the passages in the order answers show them: collapsed and reranked, no abstention."""
        query, qvec, hits, idf = self._candidates(question, k, fusion, stats)
        stored = self.store.sentence_vectors(s.hit.passage.id for s in hits)
        ranked = rank_groups(query, hits, self.encoder, qvec, self.config.search, idf, stored)
        return [r.scored for r in ranked[:k]]

    def _candidates(
        self, question: str, wanted: int, fusion: str | None, stats: SearchStats | None = None
    ) -> tuple[Query, np.ndarray, list[Scored], dict[str, float]]:
        query = parse_question(question, self.config.search.max_question_chars)
        retriever = self.retriever()
        qvec = self.encoder.embed_one(query.text)
        # Collapsing duplicates removes hits, so fetch more than will be shown; the recent get
        # their bonus among all the fused candidates before the cut. Reciprocal-rank scores are
        # on another scale (about 0.03), so that fusion gets none.
        shown = wanted * 3 + 5
        search = self.config.search
        weight = max(search.recent_weight, search.now_weight if query.of_now else 0.0)
        weight = weight if (fusion or search.fusion) != "rrf" else 0.0
        hits = retriever.search(query, qvec, max(shown, search.candidates) if weight > 0 else shown, fusion, stats)
        hits = prefer_recent(query, hits, weight, search.recent_half_life_days)[:shown]
        idf = retriever.lexical.idf(tokenize([query.text])[0])
        return query, qvec, hits, idf

    def parse(self, question: str) -> Query:
        """Validate a question and return it with its filters."""
        return parse_question(question, self.config.search.max_question_chars)

    def confidence_inputs(
        self, question: str, k: int | None = None, fusion: str | None = None
    ) -> tuple[list[tuple[float, float, float, float]], float | None]:
        """Return what abstention weighs for a question, from the hits ``ask`` answers from: per
        top passage its cosine, term coverage, share of names and best sentence's term coverage;
        and the contrast of the best passage with the background (for calibration)."""
        k = self.config.search.k if k is None else k
        stats = SearchStats()
        query, _, hits, idf = self._candidates(question, k, fusion, stats)
        stored = self.store.sentence_vectors(s.hit.passage.id for s in hits[: max(k, 3)])
        return confidence_parts(hits, k, query, idf, stored), stats.contrast

    def hits_for(self, query: Query, k: int, fusion: str | None = None) -> list[Scored]:
        """Return scored hits for an already parsed query (for evaluation)."""
        return self.retriever().search(query, self.encoder.embed_one(query.text), k, fusion)

    # -- writing -------------------------------------------------------------------------------
    def ingest(
        self,
        articles: Iterable[Article],
        progress: Callable[[int], None] | None = None,
        batch_articles: int = 64,
        resplit: Collection[str] = (),
        on_batch: Callable[[IngestReport], None] | None = None,
        on_wait: Callable[[int | None], None] | None = None,
    ) -> IngestReport:
        """Add or update articles; unchanged ones are skipped, exact copies recorded as copies.

        Articles whose ids are in ``resplit`` are split and embedded again even when unchanged.
        ``progress`` is told of passages as they are embedded, ``on_batch`` gets the report so
        far after each committed batch, ``on_wait`` is called once (with the other writer's pid,
        if known) when another process holds the write lock. The report's seconds start once
        the lock is held.
        """
        report = IngestReport()
        asked = time.perf_counter()
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._writing(on_wait):
            started = time.perf_counter()
            report.waited = started - asked
            start_gen = self.store.generation()
            vectors: FaissIndex | None = None
            # An id repeated within one input (two texts under one URL) keeps its first text, so
            # that ingesting the same input again changes nothing.
            seen_ids: set[str] = set()
            try:
                for batch in _batches(articles, batch_articles):
                    vectors = self._ingest_batch(batch, vectors, report, progress, seen_ids, resplit)
                    if on_batch is not None:
                        report.seconds = time.perf_counter() - started
                        on_batch(report)
            finally:
                if self._encoder is not None:
                    self._encoder.set_threads(self.config.model.query_threads)
                # Whatever was committed gets indexed, even when a later batch failed.
                if vectors is not None and self.store.generation() != start_gen:
                    self._finish_write(vectors)
        report.seconds = time.perf_counter() - started
        return report

    def _writing(self, on_wait: Callable[[int | None], None] | None = None) -> AbstractContextManager[None]:
        """Return the lock every writer of this data holds: the data directory's lock file."""
        return writer_lock(self.folder, on_wait=on_wait)

    def _prepare_write(self) -> FaissIndex:
        """Load the encoder and the vector index for writing; record the encoder on first use."""
        encoder = self.encoder
        if self.store.get_meta("encoder") is None:
            with self.store.transaction() as con:
                self.store.set_meta("encoder", encoder.identity, con)
                self.store.set_meta("dim", str(encoder.dim), con)
        encoder.set_threads(self.config.model.ingest_threads)
        vectors, _ = self._load_indexes(save=False, writing=True)
        # Readers in other threads keep searching the current index; the writer changes a copy
        # that replaces it when the write is done (FAISS allows no search during an add).
        return vectors.copy()

    def _ingest_batch(
        self,
        batch: list[Article],
        vectors: FaissIndex | None,
        report: IngestReport,
        progress: Callable[[int], None] | None,
        seen_ids: set[str],
        resplit: Collection[str] = (),
    ) -> FaissIndex | None:
        plan: list[tuple[Article, str, str | None, bool]] = []  # article, digest, duplicate_of, replaces
        seen: dict[str, str] = {}
        for article in batch:
            if article.id in seen_ids:
                report.skipped += 1
                report.repeated += 1
                continue
            seen_ids.add(article.id)
            digest = content_hash(article.text)
            state = self.store.article_state(article.id)
            if state is not None and state[0] == digest and article.id not in resplit:
                report.skipped += 1
                continue
            plan.append((article, digest, seen.get(digest), state is not None))
            seen.setdefault(digest, article.id)
        if not plan:
            return vectors
        if vectors is None:
            vectors = self._prepare_write()
        to_embed = [(a, split_article(a.text, self.config.passages)) for a, _, dup, _ in plan if dup is None]
        bodies = [a.text[s.start : s.end] for a, spans in to_embed for s in spans]
        titles = [a.title for a, spans in to_embed for _ in spans]
        sentences = _sentence_vectors(self.encoder, titles, bodies, progress)
        vecs = np.vstack([v for v, _ in sentences]) if bodies else np.empty((0, self._dim()), np.float32)
        removed: list[int] = []
        added_ids: list[int] = []
        added_vecs: list[np.ndarray] = []
        with self.store.transaction() as con:
            pos = 0
            spans_of = {a.id: spans for a, spans in to_embed}
            for article, digest, dup, replaces in plan:
                original = dup or self.store.original_with_hash(digest, con)
                if original == article.id:
                    original = None
                if replaces:
                    removed += self.store.delete_passages(con, article.id)
                self.store.put_article(con, article, digest, original)
                if original is not None:
                    report.duplicates += 1
                    if article.id in spans_of:
                        pos += len(spans_of[article.id])  # embedded before the copy was known
                    continue
                spans = spans_of[article.id]
                rows = [(s.ordinal, s.start, s.end, article.text[s.start : s.end]) for s in spans]
                extra = [sv for _, sv in sentences[pos : pos + len(spans)]]
                ids = self.store.add_passages(con, article.id, rows, vecs[pos : pos + len(spans)], extra)
                added_ids += ids
                added_vecs.append(vecs[pos : pos + len(spans)])
                pos += len(spans)
                report.passages += len(spans)
                report.words += len(article.text.split())
                if replaces:
                    report.updated += 1
                else:
                    report.added += 1
        vectors.remove(np.array(removed, dtype=np.int64))
        if added_ids:
            vectors.add(np.array(added_ids, dtype=np.int64), np.vstack(added_vecs))
        vectors.generation = self.store.generation()
        return vectors

    def _finish_write(self, vectors: FaissIndex) -> None:
        gen = self.store.generation()
        vectors.generation = gen
        # The vectors were kept up to date batch by batch; if their count disagrees with the store
        # (a failed batch), rebuild both from the store.
        if len(vectors) != self.store.counts()[1]:
            vectors, lexical = self._rebuild(gen)
        else:
            lexical = self._updated_lexical(vectors, gen)
            due = vectors.due()
            if due == "merge":
                vectors = vectors.merged()
            elif due == "rebuild":
                vectors = self._build_vectors(gen)
        self._save(vectors, lexical)
        with self._lock:
            self._vectors, self._lexical = vectors, lexical

    def remove(self, id_or_url: str) -> Article:
        """Delete an article and its passages from the store and the indexes."""
        article = self.store.find_article(id_or_url)
        with writer_lock(self.folder):
            current, _ = self._load_indexes(save=False, writing=True)
            vectors = current.copy()
            with self.store.transaction() as con:
                gone, _ = self.store.remove_article(con, article.id)
            vectors.remove(np.array(gone, dtype=np.int64))
            self._finish_write(vectors)
        return article

    # -- reading -------------------------------------------------------------------------------
    def get(self, id_or_url: str) -> Article:
        """Return one stored article."""
        return self.store.find_article(id_or_url)

    def sources(self, limit: int | None = 20, offset: int = 0) -> list[SourceInfo]:
        """Return stored articles, newest first."""
        return self.store.sources(limit, offset)

    def stats(self) -> IndexStats:
        """Return counts, the encoder and the time of the last write."""
        articles, passages = self.store.counts()
        updated = self.store.get_meta("updated_at")
        return IndexStats(
            articles,
            passages,
            self.store.get_meta("encoder") or self.config.model.name,
            datetime.fromisoformat(updated) if updated else None,
        )

    def check(self, repair: bool = False) -> CheckReport:
        """Verify that store and indexes agree; with ``repair`` rebuild the indexes from the store."""
        problems: list[str] = []
        ids: list[int] = []
        for pid, aid, start, end, text, article_text in self.store.check_rows():
            ids.append(int(pid))
            if article_text is None:
                problems.append(f"passage {pid} belongs to missing article {aid}")
            elif article_text[start:end] != text:
                problems.append(f"passage {pid} of article {aid}: text does not match offsets {start}:{end}")
        unsplit = self.store.articles_without_passages()
        problems += [unsplit_problem(aid) for aid in unsplit]
        articles, passages = self.store.counts()
        gen = self.store.generation()
        expected = np.array(sorted(ids), dtype=np.int64)
        vectors = FaissIndex.load(self.folder / FAISS_NAME, self.config.index)
        lexical = LexicalIndex.load(self.folder)
        if passages and vectors is None:
            problems.append("the vector index file is missing or unreadable")
        elif vectors is not None:
            if vectors.generation != gen:
                problems.append(f"the vector index is from write {vectors.generation}, the store is at {gen}")
            if not np.array_equal(np.sort(vectors.ids()), expected):
                problems.append(f"the vector index holds {plural(len(vectors), 'passage')}, the store {passages}")
        if passages and lexical is None:
            problems.append("the lexical index is missing or unreadable")
        elif lexical is not None:
            if lexical.generation != gen:
                problems.append(f"the lexical index is from write {lexical.generation}, the store is at {gen}")
            if not np.array_equal(np.sort(lexical.ids), expected):
                problems.append(f"the lexical index holds {plural(len(lexical), 'passage')}, the store {passages}")
        if repair and problems:
            if unsplit:
                self.resplit(unsplit)
            with writer_lock(self.folder):
                vectors, lexical = self._rebuild(self.store.generation())
                self._save(vectors, lexical)
                with self._lock:
                    self._vectors, self._lexical = vectors, lexical
            after = self.check(repair=False)
            return CheckReport(after.articles, after.passages, after.problems, repaired=True)
        return CheckReport(articles, passages, tuple(problems))

    def resplit(self, article_ids: Sequence[str]) -> IngestReport:
        """Split and embed these stored articles again (articles stored without passages)."""
        stored = self.store.articles(article_ids)
        return self.ingest((stored[i] for i in article_ids if i in stored), resplit=frozenset(article_ids))

    # -- questions and feedback ----------------------------------------------------------------
    def log_question(
        self, question: str, *, channel: str, chat_id: int | None, user_id: int | None, answer: Answer
    ) -> int:
        """Record a question and what was answered; return its id."""
        return self.store.log_question(
            question, channel, chat_id, user_id, answer.answered, [q.passage_id for q in answer.quotes]
        )

    def get_question(self, question_id: int) -> str | None:
        """Return a recorded question."""
        return self.store.get_question(question_id)

    def record_feedback(
        self, question_id: int, value: int, *, chat_id: int | None, user_id: int | None, passage_ids: Sequence[int]
    ) -> None:
        """Record feedback on an answer (+1 or -1)."""
        self.store.record_feedback(question_id, value, chat_id, user_id, passage_ids)

    def usage(self) -> UsageStats:
        """Return question and feedback counts."""
        return self.store.usage()


def unsplit_problem(article_id: str) -> str:
    return f"article {article_id} has no passages, so nothing of it is searchable (--repair splits it again)"


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
