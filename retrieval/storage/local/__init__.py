"""The local backend: SQLite, FAISS and BM25 files in one data directory on one machine."""
