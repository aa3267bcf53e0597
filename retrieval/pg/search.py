"""Hybrid search in the database: one statement finds, scores, fuses and returns the top passages.

Dense candidates come from the HNSW index (inner product of unit vectors = cosine), lexical ones
from the GIN index over each passage's terms, scored with BM25 exactly as the local backend's
bm25s does (Lucene variant, k1 = 1.2, b = 0.75, the same tokens). Both candidate lists are fused
with the local rule (``retrieval.search``): ``w × cosine + (1 − w) × BM25 / best BM25`` over the
candidates, or reciprocal rank fusion. Filters are applied while candidates are found, so no
extra depth is needed for them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval.config import SearchConfig
from retrieval.lexical import LexicalIndex, tokenize
from retrieval.models import Hit, Passage
from retrieval.pg.store import PgStore, quote_term, vector_literal
from retrieval.query import Query
from retrieval.search import FUSIONS, Retriever, Scored
from retrieval.store import article_from_row

__all__ = ["PgLexical", "PgRetriever"]

K1, B = 1.2, 0.75  # as LexicalIndex.build

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

_STATS = """
    stats AS (
        SELECT greatest(passages, 1)::float8 AS n,
               CASE WHEN passages > 0 THEN terms::float8 / passages ELSE 1 END AS avgdl
        FROM corpus_stats
    )"""

# Document frequencies counted with the GIN index, one term at a time.
_IDF_COUNTED = """
    idf AS (
        SELECT t.term, ln(1 + (s.n - d.df + 0.5) / (d.df + 0.5)) AS w
        FROM unnest(%(terms)s::text[], %(term_queries)s::text[]) AS t (term, tq) CROSS JOIN stats s
        CROSS JOIN LATERAL (SELECT count(*)::float8 AS df FROM passages p WHERE p.terms @@ t.tq::tsquery) d
    )"""

# Without filters every passage holding a query term is in ``tf`` already: count them there.
_IDF_MATCHED = """
    idf AS (
        SELECT t.term, ln(1 + (s.n - COALESCE(d.df, 0) + 0.5) / (COALESCE(d.df, 0) + 0.5)) AS w
        FROM unnest(%(terms)s::text[]) AS t (term) CROSS JOIN stats s
        LEFT JOIN (SELECT lexeme, count(*)::float8 AS df FROM tf GROUP BY lexeme) d ON d.lexeme = t.term
    )"""

_SEARCH = """
WITH {stats},
qt AS (SELECT t AS term FROM unnest(%(tokens)s::text[]) AS t),
dense_top AS (
    SELECT id, row_number() OVER (ORDER BY dist, id) AS r FROM (
        SELECT p.id, p.embedding <#> %(vec)s::vector AS dist FROM passages p {join}
        WHERE %(use_dense)s {filters}
        ORDER BY p.embedding <#> %(vec)s::vector LIMIT %(depth)s
    ) x
),
matched AS (
    SELECT p.id, p.n_terms, p.terms FROM passages p {join}
    WHERE %(any_terms)s AND p.terms @@ %(tsquery)s::tsquery {filters}
),
-- Each matched passage's count of each query term: setweight marks the query's lexemes and
-- ts_filter keeps only them (7x faster than unnesting every lexeme).
tf AS MATERIALIZED (
    SELECT m.id, m.n_terms, u.lexeme, cardinality(u.positions)::float8 AS tf
    FROM matched m CROSS JOIN LATERAL unnest(ts_filter(setweight(m.terms, 'A', %(terms)s::text[]), '{{a}}')) u
),
{idf},
bm AS (
    SELECT tf.id, sum(i.w * tf.tf / (tf.tf + {k1} * (1 - {b} + {b} * tf.n_terms / s.avgdl))) AS s
    FROM tf CROSS JOIN stats s JOIN qt ON qt.term = tf.lexeme JOIN idf i ON i.term = qt.term
    GROUP BY tf.id
),
lex_top AS (
    SELECT id, row_number() OVER (ORDER BY s DESC, id) AS r FROM bm WHERE %(use_lex)s ORDER BY s DESC, id
    LIMIT %(depth)s
),
cand AS (
    SELECT COALESCE(d.id, l.id) AS id, d.r AS d_rank, l.r AS l_rank FROM dense_top d FULL JOIN lex_top l ON l.id = d.id
),
scored AS (
    SELECT c.id, c.d_rank, c.l_rank, -(p.embedding <#> %(vec)s::vector) AS dense,
           (CASE WHEN %(use_lex)s THEN COALESCE(bm.s, 0) ELSE 0 END)::float8 AS lex, a.published_at
    FROM cand c JOIN passages p ON p.id = c.id JOIN articles a ON a.id = p.article_id LEFT JOIN bm ON bm.id = c.id
),
fused AS (
    SELECT s.id, s.d_rank, s.l_rank, s.dense, s.lex, ({fused}) * {recency} AS fused
    FROM scored s CROSS JOIN (SELECT max(lex) AS top, count(*) AS n FROM scored) m
)
SELECT f.id, f.dense, f.lex, f.fused, p.article_id, p.ordinal, p.start, p."end", p.text AS passage_text,
       p.embedding::real[] AS embedding, a.id AS aid, a.url, a.title, a.source, a.published, a.language,
       a.text, a.fetched_at, (SELECT json_object_agg(term, w) FROM idf)::text AS idf
FROM fused f JOIN passages p ON p.id = f.id JOIN articles a ON a.id = p.article_id
ORDER BY f.fused DESC, COALESCE(f.d_rank, 1000000 + f.l_rank)
LIMIT %(k)s
"""


def _term_params(terms: Sequence[str]) -> dict[str, Any]:
    unique = list(dict.fromkeys(terms))
    return {"terms": unique, "term_queries": [quote_term(t) for t in unique]}


class PgLexical(LexicalIndex):
    """The database's term statistics seen as a lexical index: answering asks it for IDF only."""

    def __init__(self, store: PgStore) -> None:
        # Nothing of LexicalIndex's in-memory model is used: the terms are in the database.
        self.ids = np.empty(0, dtype=np.int64)
        self.generation = store.generation()
        self.store = store
        self.known: dict[str, float] = {}

    def idf(self, terms: Sequence[str]) -> dict[str, float]:
        """Return the inverse document frequency of each stemmed term, as the local index does."""
        missing = [t for t in dict.fromkeys(terms) if t not in self.known]
        if missing:
            sql = f"WITH {_STATS}, {_IDF_COUNTED} SELECT term, w FROM idf"  # noqa: S608
            with self.store.db.connection(read_only=True) as con:
                for term, weight in con.execute(sql, _term_params(missing)).fetchall():
                    self.known[str(term)] = float(weight)
        return {t: self.known[t] for t in terms}


class PgRetriever(Retriever):
    """Find the passages that best match a query with one statement in the database."""

    store: PgStore
    lexical: PgLexical

    def __init__(self, store: PgStore, config: SearchConfig) -> None:
        # Retriever's own indexes live in memory; here both are in the database.
        self.store = store
        self.config = config
        self.lexical = PgLexical(store)

    def search(self, query: Query, query_vector: np.ndarray, k: int, fusion: str | None = None) -> list[Scored]:
        """Return up to ``k`` hits for ``query``, best first."""
        method = fusion or self.config.fusion
        if method not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}")
        tokens = tokenize([query.text])[0]
        unique = list(dict.fromkeys(tokens))
        filters: list[str] = []
        params: dict[str, Any] = {
            **_term_params(unique),
            "tokens": tokens,
            "tsquery": " | ".join(quote_term(t) for t in unique),
            "vec": vector_literal(query_vector),
            "use_dense": method != "lexical",
            "use_lex": method != "dense",
            "any_terms": bool(unique),
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
        sql = _SEARCH.format(
            stats=_STATS,
            # Filters thin out the matched passages, so their counts are not document frequencies.
            idf=_IDF_COUNTED if filters else _IDF_MATCHED,
            join="JOIN articles a ON a.id = p.article_id" if filters else "",
            filters="".join(f" AND {f}" for f in filters),
            k1=K1,
            b=B,
            fused=_FUSED[method],
            recency=_RECENCY if self.config.recency_half_life_days > 0 else "1",
        )
        with (
            self.store.db.connection(read_only=True) as con,
            con.cursor(row_factory=self.store.db.dict_row, binary=True) as cur,
        ):
            rows = cur.execute(sql, params).fetchall()
        if rows and rows[0]["idf"]:
            self.lexical.known.update({str(t): float(w) for t, w in json.loads(rows[0]["idf"]).items()})
        out: list[Scored] = []
        for rank, r in enumerate(rows, start=1):
            passage = Passage(int(r["id"]), r["article_id"], r["ordinal"], r["start"], r["end"], r["passage_text"])
            article = article_from_row(r, id_column="aid")
            hit = Hit(passage, float(r["dense"]), float(r["lex"]), float(r["fused"]), rank)
            out.append(Scored(hit, article, np.asarray(r["embedding"], dtype=np.float32)))
        return out
