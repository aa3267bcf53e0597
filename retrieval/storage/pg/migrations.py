"""The database schema as numbered migrations, applied in order by ``newsqa db upgrade``.

``schema_version`` records every migration applied. A database with a higher version than the
newest migration here was written by a newer newsqa, and this one refuses to touch it.
Migrations only ever get added at the end; an applied one is never edited (nor its Python step:
a later change to the rows is a new migration).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from retrieval.errors import StoreError

__all__ = [
    "INDEX_DDL",
    "LATEST",
    "MIGRATIONS",
    "Migration",
    "check_version",
    "current_version",
    "dimension_ddl",
    "upgrade",
    "wait_for_migrations",
]

# Every process that migrates takes this advisory lock first, so two upgrades never interleave.
MIGRATION_LOCK = 7_245_101


@dataclass(frozen=True)
class Migration:
    """One step of the schema: its SQL, then (if any) a Python step, in one transaction.

    ``python`` takes the connection, for what SQL alone cannot do (newsqa's own tokenizer).
    """

    version: int
    description: str
    sql: str
    python: Callable[[Any], None] | None = None


# Migration 3 re-tokenises this many passages per round trip.
_RETOKENISE_BATCH = 5000


def _terms_without_title(con: Any) -> None:
    """Migration 3: every passage's terms from its own text alone, then postings and sums afresh.

    Passages are read and tokenised in batches by id, their terms copied into a temporary table,
    and only the rows whose terms change are updated, in one statement. The indexes stay: pgvector
    adds the new version of a row with an unchanged vector to the existing graph element, and at
    100k passages the whole migration took 69-78 s against 121-129 s with the HNSW and GIN
    indexes dropped and built again.
    """
    # Imported here: the store imports this module, and newsqa's commands do not load the tokenizer
    # unless they need it.
    from retrieval.search.tokens import tokenize
    from retrieval.storage.pg.literals import terms_literal

    con.execute(
        "CREATE TEMP TABLE retokenised (id bigint PRIMARY KEY, terms tsvector NOT NULL, n_terms integer NOT NULL)"
        " ON COMMIT DROP"
    )
    last = -1
    with con.cursor() as cur:
        while True:
            # Every passage, titled or not: one moved to a copy of its article (remove_article)
            # holds the title of the article removed, whatever the copy's own title is.
            rows = cur.execute(
                "SELECT id, text FROM passages WHERE id > %s ORDER BY id LIMIT %s", (last, _RETOKENISE_BATCH)
            ).fetchall()
            if not rows:
                break
            tokens = tokenize([text for _, text in rows])
            with cur.copy("COPY retokenised (id, terms, n_terms) FROM STDIN") as copy:
                for (pid, _), toks in zip(rows, tokens, strict=True):
                    copy.write_row((pid, terms_literal(toks), len(toks)))
            last = int(rows[-1][0])
    con.execute(
        "DELETE FROM retokenised r USING passages p WHERE p.id = r.id AND p.terms = r.terms AND p.n_terms = r.n_terms"
    )
    con.execute("UPDATE passages p SET terms = r.terms, n_terms = r.n_terms FROM retokenised r WHERE p.id = r.id")
    # The postings triggers fire on INSERT and DELETE, not UPDATE: write them afresh, in key order.
    con.execute("TRUNCATE postings, term_stats")
    con.execute(
        "INSERT INTO postings (term, passage_id, tf, dl)"
        " SELECT u.lexeme, p.id, cardinality(u.positions), p.n_terms"
        " FROM passages p CROSS JOIN LATERAL unnest(p.terms) u ORDER BY 1, 2"
    )
    con.execute(
        "INSERT INTO term_stats (term, df, max_tf, min_dl)"
        " SELECT term, count(*), max(tf), min(dl) FROM postings GROUP BY term"
    )
    con.execute(
        "UPDATE corpus_stats SET passages = d.n, terms = d.t"
        " FROM (SELECT count(*) AS n, COALESCE(sum(n_terms), 0) AS t FROM passages) d"
    )
    con.execute("ANALYZE passages")
    con.execute("ANALYZE postings")
    con.execute("ANALYZE term_stats")
    con.execute("ANALYZE corpus_stats")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "articles, passages with vectors and terms, questions, feedback, meta",
        """
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
        CREATE TABLE articles (
            id text PRIMARY KEY,
            url text NOT NULL UNIQUE,
            title text,
            source text,
            published text,              -- ISO 8601 exactly as loaded (offset kept)
            published_at timestamptz,    -- the same instant, for filters and ordering
            language text,
            text text NOT NULL,
            content_hash text NOT NULL,
            duplicate_of text,
            fetched_at text,
            added_at timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX articles_hash ON articles (content_hash);
        CREATE INDEX articles_dup ON articles (duplicate_of);
        CREATE INDEX articles_published ON articles (published_at);
        -- embedding gets its dimension (and its HNSW index) when the first encoder is recorded.
        CREATE TABLE passages (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            article_id text NOT NULL REFERENCES articles (id),
            ordinal integer NOT NULL,
            start integer NOT NULL,
            "end" integer NOT NULL,
            text text NOT NULL,
            terms tsvector NOT NULL,      -- newsqa's own stemmed tokens of title + text, with positions
            n_terms integer NOT NULL,     -- how many tokens (BM25's document length)
            embedding vector NOT NULL
        );
        -- A row (vector, terms, text: about 3 kB) stays whole in the heap: searches read the vector
        -- and the terms of many rows, and fetching them from TOAST made each search 2-9x slower.
        ALTER TABLE passages ALTER COLUMN embedding SET STORAGE PLAIN;  -- see dimension_ddl
        ALTER TABLE passages SET (toast_tuple_target = 8160);
        -- BM25 needs the number of passages and their mean length at every question; counting them
        -- scanned the whole table (105 ms at 39,630 passages). Triggers keep the sums instead.
        CREATE TABLE corpus_stats (
            id integer PRIMARY KEY CHECK (id = 1),
            passages bigint NOT NULL,
            terms bigint NOT NULL
        );
        INSERT INTO corpus_stats VALUES (1, 0, 0);
        CREATE FUNCTION corpus_stats_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE corpus_stats SET passages = passages + d.n, terms = terms + d.t
            FROM (SELECT count(*) AS n, COALESCE(sum(n_terms), 0) AS t FROM added) d;
            RETURN NULL;
        END $$;
        CREATE FUNCTION corpus_stats_removed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE corpus_stats SET passages = passages - d.n, terms = terms - d.t
            FROM (SELECT count(*) AS n, COALESCE(sum(n_terms), 0) AS t FROM removed) d;
            RETURN NULL;
        END $$;
        CREATE TRIGGER passages_added AFTER INSERT ON passages REFERENCING NEW TABLE AS added
            FOR EACH STATEMENT EXECUTE FUNCTION corpus_stats_added();
        CREATE TRIGGER passages_removed AFTER DELETE ON passages REFERENCING OLD TABLE AS removed
            FOR EACH STATEMENT EXECUTE FUNCTION corpus_stats_removed();
        -- Pooled sentence vectors (retrieval/models/sentvecs.py), read only for the few passages quoted:
        -- kept apart so that they do not thin out the rows every search scans.
        CREATE TABLE passage_sentences (
            passage_id bigint PRIMARY KEY REFERENCES passages (id) ON DELETE CASCADE,
            sentences bytea NOT NULL
        );
        CREATE INDEX passages_article ON passages (article_id);
        CREATE INDEX passages_terms ON passages USING gin (terms);
        CREATE TABLE questions (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            asked_at timestamptz NOT NULL DEFAULT now(),
            question text NOT NULL,
            channel text NOT NULL,
            chat_id bigint,
            user_id bigint,
            answered boolean NOT NULL,
            passage_ids bigint[] NOT NULL
        );
        CREATE TABLE feedback (
            id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            question_id bigint NOT NULL,
            value smallint NOT NULL CHECK (value IN (-1, 1)),
            chat_id bigint,
            user_id bigint,
            passage_ids bigint[] NOT NULL,
            at timestamptz NOT NULL DEFAULT now()
        );
        -- ETag/Last-Modified and feed-entry fingerprints of fetched URLs (retrieval/ingest/feeds.py).
        CREATE TABLE web_fetches (
            url text PRIMARY KEY,
            etag text,
            last_modified text,
            fingerprint text,
            article_id text,
            fetched_at text NOT NULL
        );
        INSERT INTO meta (key, value) VALUES ('generation', '0');
        """,
    ),
    Migration(
        2,
        "postings and term statistics for BM25 top-k without scoring every matching passage",
        """
        -- One row per (term, passage): the term's count there and the passage's length. The key
        -- index carries both, so BM25 reads a term's postings from the index alone.
        CREATE TABLE postings (
            term text NOT NULL,
            passage_id bigint NOT NULL,
            tf integer NOT NULL,
            dl integer NOT NULL,
            PRIMARY KEY (term, passage_id) INCLUDE (tf, dl)
        );
        -- Per term: document frequency, and the highest count and shortest passage it occurs in
        -- (bounds of its BM25 contribution; they only ever widen, so they stay bounds after removals).
        CREATE TABLE term_stats (
            term text PRIMARY KEY,
            df integer NOT NULL,
            max_tf integer NOT NULL,
            min_dl integer NOT NULL
        );
        CREATE FUNCTION postings_added() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            WITH new AS (
                INSERT INTO postings (term, passage_id, tf, dl)
                SELECT u.lexeme, a.id, cardinality(u.positions), a.n_terms
                FROM added a CROSS JOIN LATERAL unnest(a.terms) u
                RETURNING term, tf, dl
            )
            INSERT INTO term_stats (term, df, max_tf, min_dl)
            SELECT term, count(*), max(tf), min(dl) FROM new GROUP BY term
            ON CONFLICT (term) DO UPDATE SET df = term_stats.df + excluded.df,
                max_tf = greatest(term_stats.max_tf, excluded.max_tf),
                min_dl = least(term_stats.min_dl, excluded.min_dl);
            RETURN NULL;
        END $$;
        CREATE FUNCTION postings_removed() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            emptied text[];
        BEGIN
            WITH gone AS (
                DELETE FROM postings p USING (
                    SELECT u.lexeme, r.id
                    FROM removed r CROSS JOIN LATERAL unnest(tsvector_to_array(r.terms)) u (lexeme)
                ) r WHERE p.term = r.lexeme AND p.passage_id = r.id
                RETURNING p.term
            ), changed AS (
                UPDATE term_stats t SET df = t.df - g.n FROM (SELECT term, count(*) AS n FROM gone GROUP BY term) g
                WHERE t.term = g.term RETURNING t.term, t.df
            )
            SELECT array_agg(term) INTO emptied FROM changed WHERE df <= 0;
            DELETE FROM term_stats WHERE term = ANY(emptied);
            RETURN NULL;
        END $$;
        CREATE TRIGGER passages_postings_added AFTER INSERT ON passages REFERENCING NEW TABLE AS added
            FOR EACH STATEMENT EXECUTE FUNCTION postings_added();
        CREATE TRIGGER passages_postings_removed AFTER DELETE ON passages REFERENCING OLD TABLE AS removed
            FOR EACH STATEMENT EXECUTE FUNCTION postings_removed();
        INSERT INTO postings (term, passage_id, tf, dl)
            SELECT u.lexeme, p.id, cardinality(u.positions), p.n_terms
            FROM passages p CROSS JOIN LATERAL unnest(p.terms) u ORDER BY 1, 2;
        INSERT INTO term_stats (term, df, max_tf, min_dl)
            SELECT term, count(*), max(tf), min(dl) FROM postings GROUP BY term;
        ANALYZE postings;
        ANALYZE term_stats;
        ANALYZE corpus_stats;
        """,
    ),
    Migration(
        3,
        "BM25 terms of passages without the article title",
        "",  # all in the Python step
        _terms_without_title,
    ),
)

LATEST = MIGRATIONS[-1].version


def current_version(con: Any) -> int:
    """Return the newest migration applied to the database (0: none)."""
    row = con.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    version = con.execute("SELECT COALESCE(max(version), 0) FROM schema_version").fetchone()[0]
    return int(version)


def _newer_error(version: int) -> StoreError:
    return StoreError(
        f"the database schema is version {version}, newer than this newsqa knows ({LATEST}); upgrade newsqa"
    )


def check_version(con: Any) -> int:
    """Return the schema version if this code can use it; raise StoreError otherwise."""
    version = current_version(con)
    if version > LATEST:
        raise _newer_error(version)
    if version < LATEST:
        raise StoreError(
            f"the database schema is version {version}, this newsqa needs {LATEST}; run `newsqa db upgrade`"
        )
    return version


def wait_for_migrations(con: Any) -> None:
    """Return once no other process is applying migrations (at once when none is)."""
    con.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    con.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def upgrade(con: Any) -> list[Migration]:
    """Apply the migrations the database lacks, each in its own transaction; return them.

    ``con`` is an autocommit connection to the primary.
    """
    applied: list[Migration] = []
    con.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        con.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY, description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        version = current_version(con)
        if version > LATEST:
            raise _newer_error(version)
        for migration in MIGRATIONS:
            if migration.version <= version:
                continue
            with con.transaction():
                con.execute("SET LOCAL statement_timeout = 0")
                if migration.sql.strip():
                    con.execute(migration.sql)
                if migration.python is not None:
                    migration.python(con)
                con.execute(
                    "INSERT INTO schema_version (version, description) VALUES (%s, %s)",
                    (migration.version, migration.description),
                )
            applied.append(migration)
    finally:
        con.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied


def dimension_ddl(dim: int) -> list[str]:
    """Return the statements (for one transaction) that fix the vector column's dimension.

    The vectors are kept in the row (storage PLAIN): out of line in TOAST, as pgvector stores
    them by default past PostgreSQL's 2 kB row threshold, every distance computed reads them back
    from the TOAST table — 9x slower on a sequential scan here (7.0 ms against 0.8 ms, 2,940 rows).
    """
    return [
        "SET LOCAL statement_timeout = 0",  # a migrated corpus is rewritten and indexed here
        f"ALTER TABLE passages ALTER COLUMN embedding TYPE vector({int(dim)})",
        "ALTER TABLE passages ALTER COLUMN embedding SET STORAGE PLAIN",  # ALTER TYPE resets it
    ]


# Unit vectors: inner product ranks like cosine and is the cheapest distance.
INDEX_DDL = "CREATE INDEX IF NOT EXISTS passages_embedding ON passages USING hnsw (embedding vector_ip_ops)"
