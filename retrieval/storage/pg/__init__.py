"""The PostgreSQL + pgvector backend (``[storage] backend = "postgres"``).

Articles, passages, their vectors (``vector(N)`` under an HNSW index) and their terms (a
``tsvector`` under a GIN index) live in one database shared by every process and machine, so
there are no index files: ingestion anywhere is visible to every reader at its next question.
Hybrid ranking runs in the database in one statement, fused with the local backend's rule.

psycopg is imported only when a database is opened; the extra is ``newsqa[postgres]``.
"""
