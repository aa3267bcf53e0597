"""Hybrid search in the database: one statement finds, scores, fuses and returns the top passages.

Dense candidates come from the HNSW index (inner product of unit vectors = cosine), lexical ones
from the postings table (term, passage, count, length; kept by triggers with each passage row),
scored with BM25 exactly as the local backend's bm25s does (Lucene variant, k1 = 1.2, b = 0.75,
the same tokens) but without scoring every passage that holds a query term. Both lists are fused
with the local rule (``retrieval.search.fusion``): ``w × cosine + (1 − w) × BM25 / best BM25`` over the
candidates, or reciprocal rank fusion. Filters are applied while candidates are found, so no
extra depth is needed for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval.config import SearchConfig
from retrieval.domain import Hit, Passage
from retrieval.query import Query
from retrieval.search.fusion import FUSIONS, Scored, SearchStats, background_of
from retrieval.storage.pg.literals import vector_literal
from retrieval.storage.pg.store import PgStore
from retrieval.storage.rows import article_from_row

__all__ = ["PgRetriever"]

K1, B = "1.2::float8", "0.75::float8"  # as LexicalIndex.build (float8: numeric arithmetic is slow)

_FUSED = {
    "weighted": "%(w)s * s.dense + (1 - %(w)s) * (CASE WHEN m.top > 0 THEN s.lex / m.top ELSE 0 END)",
    "dense": "s.dense",
    "lexical": "(CASE WHEN m.top > 0 THEN s.lex / m.top ELSE 0 END)",
    "rrf": "1.0 / (%(rrf_k)s + COALESCE(s.d_rank, m.n + 1000)) + 1.0 / (%(rrf_k)s + COALESCE(s.l_rank, m.n + 1000))",
}

_RECENCY = (
    "(CASE WHEN s.published_at IS NULL THEN 0.9 ELSE 0.8 + 0.2 * power(0.5,"
    " greatest(0, extract(epoch FROM now() - s.published_at) / 86400) / %(half_life)s) END)"
)

# One row, by its key: the planner then knows it is one row even before corpus_stats is analyzed
# (estimated at 1,700 rows, every join with it went wrong: 2.9 s instead of 60 ms a question).
_STATS = """
    stats AS (
        SELECT greatest(passages, 1)::float8 AS n,
               CASE WHEN passages > 0 THEN terms::float8 / passages ELSE 1 END AS avgdl
        FROM corpus_stats WHERE id = 1
    )"""

# Each query term's IDF from its document frequency, kept in term_stats by triggers.
_IDF = """
    idf AS MATERIALIZED (
        SELECT t.term, ln(1 + (s.n - COALESCE(d.df, 0) + 0.5) / (COALESCE(d.df, 0) + 0.5)) AS w
        FROM unnest(%(terms)s::text[]) AS t (term) CROSS JOIN stats s LEFT JOIN term_stats d ON d.term = t.term
    )"""

# BM25's term-frequency factor of one posting.
_TF_PART = "p.tf / (p.tf + {k1} * (1 - {b} + {b} * p.dl / s.avgdl))"

# The lexical top ``depth`` without scoring every passage that holds a query term (MaxScore):
# a few passages holding the rarest terms are scored in full first, and the depth-th best of
# them, theta, is a score the depth-th best passage reaches for sure. A term adds at most its
# weight times the factor of its highest count at its shortest passage length (``ub``) to a
# score; the commonest terms whose bounds add up to less than theta cannot lift a passage holding
# none of the other terms into the top, so only the other terms' postings are read and summed.
# The best of those partial sums are completed, which raises theta to the depth-th best of them;
# then only passages whose partial sum plus the common terms' bounds reaches theta are completed.
# Every score is computed in full with the same formula: the ranking is that of scoring all.
_LEXICAL = """
qterms AS MATERIALIZED (
    SELECT q.term, q.qtf * i.w AS w, d.df,
           q.qtf * i.w * d.max_tf / (d.max_tf + {k1} * (1 - {b} + {b} * d.min_dl / s.avgdl)) AS ub
    FROM (SELECT term, count(*)::float8 AS qtf FROM unnest(%(tokens)s::text[]) AS t (term) GROUP BY term) q
    JOIN idf i ON i.term = q.term JOIN term_stats d ON d.term = q.term CROSS JOIN stats s
    WHERE %(use_lex)s AND d.df > 0
),
rarest AS MATERIALIZED (
    SELECT term, w FROM (SELECT term, w, sum(df) OVER (ORDER BY df, term) - df AS before FROM qterms) x
    WHERE before < %(depth)s
),
seed AS MATERIALIZED (
    SELECT p.passage_id AS id FROM rarest q JOIN postings p ON p.term = q.term CROSS JOIN stats s
    GROUP BY p.passage_id ORDER BY sum(q.w * {tf_part}) DESC, p.passage_id LIMIT 2 * %(depth)s
),
theta0 AS MATERIALIZED (
    SELECT COALESCE((SELECT f.s FROM ({score_seed}) f ORDER BY f.s DESC OFFSET %(depth)s - 1 LIMIT 1), 0)
           * (1 - 1e-9) AS t
),
split AS MATERIALIZED (
    SELECT q.term, q.w, q.ub, sum(q.ub) OVER (ORDER BY q.ub, q.term) < t.t AS common
    FROM qterms q CROSS JOIN theta0 t
),
commons AS MATERIALIZED (
    SELECT COALESCE(array_agg(term), '{{}}') AS terms, COALESCE(sum(ub), 0) AS rest FROM split WHERE common
),
partial AS MATERIALIZED (
    SELECT p.passage_id AS id, sum(q.w * {tf_part}) AS s
    FROM split q JOIN postings p ON p.term = q.term CROSS JOIN stats s
    WHERE NOT q.common GROUP BY p.passage_id
),
best AS MATERIALIZED (
    SELECT id, s FROM partial ORDER BY s DESC, id LIMIT 2 * %(depth)s
),
theta AS MATERIALIZED (
    SELECT greatest(t.t, COALESCE((
        SELECT x.s + COALESCE(c.s, 0) FROM best x LEFT JOIN ({score_best}) c ON c.id = x.id
        ORDER BY 1 DESC OFFSET %(depth)s - 1 LIMIT 1), 0) * (1 - 1e-9)) AS t
    FROM theta0 t
),
survivors AS MATERIALIZED (
    SELECT x.id, x.s FROM partial x CROSS JOIN theta t CROSS JOIN commons c WHERE x.s + c.rest >= t.t
),
lex_scores AS (
    SELECT x.id, x.s + COALESCE(c.s, 0) AS s FROM survivors x LEFT JOIN ({score_survivors}) c ON c.id = x.id
)"""

# With filters, every passage that holds a query term and passes them is scored.
_LEXICAL_FILTERED = """
qterms AS MATERIALIZED (
    SELECT q.term, q.qtf * i.w AS w
    FROM (SELECT term, count(*)::float8 AS qtf FROM unnest(%(tokens)s::text[]) AS t (term) GROUP BY term) q
    JOIN idf i ON i.term = q.term
    WHERE %(use_lex)s
),
lex_scores AS (
    SELECT x.id, x.s FROM (
        SELECT p.passage_id AS id, sum(q.w * {tf_part}) AS s FROM qterms q JOIN postings p ON p.term = q.term
        CROSS JOIN stats s GROUP BY p.passage_id
    ) x JOIN passages p ON p.id = x.id JOIN articles a ON a.id = p.article_id
    WHERE true {filters}
)"""

# BM25 scores (or the part of them from ``{terms}``) of a set of passages, from the postings of
# those terms at those passages: with both lists as arrays the index walks each term's postings
# once, skipping between the wanted passages.
_SCORE = (
    "SELECT p.passage_id AS id, sum(q.w * {tf_part}) AS s FROM postings p JOIN qterms q ON q.term = p.term"
    " CROSS JOIN stats s WHERE p.term = ANY({terms}) AND p.passage_id = ANY(ARRAY(SELECT id FROM {ids} ORDER BY id))"
    " GROUP BY p.passage_id"
)

_SEARCH = """
WITH {stats},
{idf},
dense_top AS (
    SELECT id, dist, row_number() OVER (ORDER BY dist, id) AS r FROM (
        SELECT p.id, p.embedding <#> %(vec)s::vector AS dist FROM passages p {join}
        WHERE %(use_dense)s {filters}
        ORDER BY p.embedding <#> %(vec)s::vector LIMIT %(depth)s
    ) x
),
{lexical},
lex_top AS MATERIALIZED (
    SELECT id, s, row_number() OVER (ORDER BY s DESC, id) AS r FROM lex_scores WHERE %(use_lex)s
    ORDER BY s DESC, id LIMIT %(depth)s
),
cand AS (
    SELECT COALESCE(d.id, l.id) AS id, d.r AS d_rank, l.r AS l_rank, l.s
    FROM dense_top d FULL JOIN lex_top l ON l.id = d.id
),
scored AS (
    SELECT c.id, c.d_rank, c.l_rank, -(p.embedding <#> %(vec)s::vector) AS dense,
           (CASE WHEN %(use_lex)s THEN COALESCE(c.s, f.s, 0) ELSE 0 END)::float8 AS lex, a.published_at
    FROM cand c JOIN passages p ON p.id = c.id JOIN articles a ON a.id = p.article_id
    LEFT JOIN ({score_dense}) f ON f.id = c.id
),
fused AS (
    SELECT s.id, s.d_rank, s.l_rank, s.dense, s.lex, ({fused}) * {recency} AS fused
    FROM scored s CROSS JOIN (SELECT max(lex) AS top, count(*) AS n FROM scored) m
)
SELECT f.id, f.dense, f.lex, f.fused, p.article_id, p.ordinal, p.start, p."end", p.text AS passage_text,
       p.embedding::real[] AS embedding, a.id AS aid, a.url, a.title, a.source, a.published, a.language,
       a.text, a.fetched_at, (SELECT json_object_agg(term, w) FROM idf)::text AS idf,
       (SELECT array_agg(-dist ORDER BY r) FROM dense_top)::real[] AS dense_scores
FROM fused f JOIN passages p ON p.id = f.id JOIN articles a ON a.id = p.article_id
ORDER BY f.fused DESC, COALESCE(f.d_rank, 1000000 + f.l_rank)
LIMIT %(k)s
"""


class PgRetriever:
    """Find the passages that best match a query with one statement in the database."""

    def __init__(self, store: PgStore, config: SearchConfig) -> None:
        self.store = store
        self.config = config
        self.known: dict[str, float] = {}  # the IDF of the terms seen, from the last statements

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """Return the inverse document frequency of each stemmed term, as the local index does."""
        missing = [t for t in dict.fromkeys(terms) if t not in self.known]
        if missing:
            sql = f"WITH {_STATS}, {_IDF} SELECT term, w FROM idf"  # noqa: S608
            with self.store.db.connection(read_only=True) as con:
                for term, weight in con.execute(sql, {"terms": missing}).fetchall():
                    self.known[str(term)] = float(weight)
        return {t: self.known[t] for t in terms}

    def search(
        self,
        query: Query,
        query_vector: np.ndarray,
        k: int,
        fusion: str,
        stats: SearchStats | None = None,
    ) -> list[Scored]:
        """Return up to ``k`` hits for ``query``, best first; fill ``stats`` if given."""
        if stats is not None and query.filtered:
            # The statement's dense list is filtered; the background is of the whole collection.
            self._fill_stats(query_vector, stats)
        sql, params = self.statement(query, query_vector, k, fusion)
        with (
            self.store.db.connection(read_only=True) as con,
            con.cursor(row_factory=self.store.db.dict_row, binary=True) as cur,
        ):
            rows = cur.execute(sql, params).fetchall()
        if stats is not None and not query.filtered and rows and rows[0]["dense_scores"]:
            scores = np.asarray(rows[0]["dense_scores"], dtype=np.float32)
            stats.top, stats.background = float(scores[0]), background_of(scores)
        if rows and rows[0]["idf"]:
            self.known.update({str(t): float(w) for t, w in json.loads(rows[0]["idf"]).items()})
        out: list[Scored] = []
        for rank, r in enumerate(rows, start=1):
            passage = Passage(int(r["id"]), r["article_id"], r["ordinal"], r["start"], r["end"], r["passage_text"])
            article = article_from_row(r, id_column="aid")
            hit = Hit(passage, float(r["dense"]), float(r["lex"]), float(r["fused"]), rank)
            out.append(Scored(hit, article, np.asarray(r["embedding"], dtype=np.float32)))
        return out

    def _fill_stats(self, query_vector: np.ndarray, stats: SearchStats) -> None:
        """The dense top 60's best and background cosines (as the local backend's, unfiltered)."""
        with self.store.db.connection(read_only=True) as con:
            rows = con.execute(
                "SELECT -(embedding <#> %(vec)s::vector) FROM passages ORDER BY embedding <#> %(vec)s::vector"
                " LIMIT %(depth)s",
                {"vec": vector_literal(query_vector), "depth": max(60, self.config.candidates)},
            ).fetchall()
        scores = np.array([float(r[0]) for r in rows], dtype=np.float32)
        if len(scores):
            stats.top, stats.background = float(scores[0]), background_of(scores)

    def statement(self, query: Query, query_vector: np.ndarray, k: int, fusion: str) -> tuple[str, dict[str, Any]]:
        """Return the one statement (and its parameters) that answers :meth:`search`."""
        method = fusion
        if method not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}")
        tokens = query.terms
        filters: list[str] = []
        params: dict[str, Any] = {
            "terms": list(dict.fromkeys(tokens)),
            "tokens": tokens,
            "vec": vector_literal(query_vector),
            "use_dense": method != "lexical",
            "use_lex": method != "dense",
            "depth": max(k, self.config.candidates),
            "w": self.config.dense_weight,
            "rrf_k": self.config.rrf_k,
            "half_life": self.config.recency_half_life_days,
            "k": k,
        }
        if query.source is not None:
            filters.append("strpos(lower(COALESCE(a.source, '') || ' ' || a.url), %(source)s) > 0")
            params["source"] = query.source.lower()
        if query.since is not None:
            filters.append("a.published_at >= %(since)s")
            params["since"] = query.since
        if query.until is not None:
            filters.append("a.published_at <= %(until)s")
            params["until"] = query.until
        where = "".join(f" AND {f}" for f in filters)
        tf_part = _TF_PART.format(k1=K1, b=B)
        terms = "%(terms)s::text[]"

        def score(ids: str, which: str = terms) -> str:
            return _SCORE.format(tf_part=tf_part, terms=which, ids=ids)

        lexical = (_LEXICAL_FILTERED if filters else _LEXICAL).format(
            k1=K1,
            b=B,
            tf_part=tf_part,
            filters=where,
            score_seed=score("seed"),
            score_best=score("best", "(SELECT terms FROM commons)::text[]"),
            score_survivors=score("survivors", "(SELECT terms FROM commons)::text[]"),
        )
        sql = _SEARCH.format(
            score_dense=score("cand WHERE s IS NULL"),
            stats=_STATS,
            idf=_IDF,
            lexical=lexical,
            join="JOIN articles a ON a.id = p.article_id" if filters else "",
            filters=where,
            fused=_FUSED[method],
            recency=_RECENCY if self.config.recency_half_life_days > 0 else "1",
        )
        return sql, params
