"""PostgreSQL against local, in one run: whole-answer latency at scale and ingestion throughput.

    python bench/bench_pg.py /tmp/scale/s100k --json /tmp/scale/pg100k.json

The local data directory (default: the 100k material of ``bench/bench_scale.py make --size
100000 --out /tmp/scale/s100k``) is copied with ``migrate`` into a fresh PostgreSQL 18 + pgvector
started on loopback in a temporary directory (``tests/pg_server.py``, the server the tests use).
Then, with the same encoder object for both backends:

- answers: the RealTimeQA dev questions (as in bench_scale.py), each asked of local and then of
  postgres (the order alternating per question, so both see the same load), whole question to
  ``Answer`` (``NewsIndex.ask``, the path of ``newsqa ask``), and the search alone with the
  question vector given (``Retriever.search``); p50 / p95 per pass, medians over the passes;
- ingestion: the same SQuAD dev articles into a fresh local data directory and a fresh database,
  in alternating batches; passages/s, and the share of the time spent in the encoder.

The server runs with fsync off (as in the tests) and ``--shared-buffers`` of cache. The load
average is recorded at the start and end: the machine is shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_scale import NEW_ARTICLES, _config, _pct, _questions  # noqa: E402

from retrieval.config import Config, Secret  # noqa: E402
from retrieval.ingest.loaders import load_file  # noqa: E402
from retrieval.models.encoder import Encoder  # noqa: E402
from retrieval.newsindex import NewsIndex  # noqa: E402
from retrieval.query import parse_question  # noqa: E402
from retrieval.storage.factory import migrate  # noqa: E402
from tests.pg_server import PgServer  # noqa: E402

DEFAULT_DATA = Path("/tmp/scale/s100k")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _on_postgres(config: Config, dsn: str) -> Config:
    storage = dataclasses.replace(config.storage, backend="postgres", dsn=Secret(dsn))
    return dataclasses.replace(config, storage=storage)


def start_server(shared_buffers: str) -> PgServer:
    """Start a throwaway server and give it ``shared_buffers`` of cache (a restart)."""
    import psycopg

    server = PgServer.start()
    with psycopg.connect(server.dsn(), autocommit=True) as con:
        con.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
    server.halt()
    server.resume()
    return server


def copy_in(config: Config, dsn: str) -> dict[str, Any]:
    """``newsqa migrate --from local --to postgres``; return its time and the database's sizes."""
    import psycopg

    t = time.perf_counter()
    report = migrate(_on_postgres(config, dsn), "local", "postgres")
    seconds = time.perf_counter() - t
    with psycopg.connect(dsn) as con:
        sizes = con.execute(
            "SELECT pg_database_size(current_database()), pg_total_relation_size('passages'),"
            " pg_total_relation_size('postings'), pg_total_relation_size('term_stats')"
        ).fetchone()
    assert sizes is not None
    mb = [round(s / 2**20) for s in sizes]
    return {
        "articles": report.articles,
        "passages": report.passages,
        "migrate_s": round(seconds, 1),
        "mb": {"database": mb[0], "passages": mb[1], "postings": mb[2], "term_stats": mb[3]},
    }


def answers(local: NewsIndex, pg: NewsIndex, questions: list[str], repeats: int) -> dict[str, Any]:
    """Answer and search latency of both backends, question by question in alternating order."""
    encoder = local.encoder
    config = local.config
    queries = [parse_question(q, config.search.max_question_chars) for q in questions]
    vectors = [encoder.embed_one(q.text) for q in queries]
    backends = {"local": local, "postgres": pg}
    for index in backends.values():  # warm up: model, caches, prepared statements
        for q in questions[:20]:
            index.ask(q)
    passes: list[dict[str, dict[str, list[float]]]] = []
    same_top = 0
    for rep in range(repeats):
        times: dict[str, dict[str, list[float]]] = {b: {"search": [], "answer": []} for b in backends}
        for i, (question, query, vector) in enumerate(zip(questions, queries, vectors, strict=True)):
            order = list(backends) if (i + rep) % 2 == 0 else list(reversed(backends))
            quotes: dict[str, list[int]] = {}
            for name in order:
                index = backends[name]
                t0 = time.perf_counter()
                index.backend.retriever().search(query, vector, 14, index.config.search.fusion)
                t1 = time.perf_counter()
                answer = index.ask(question)
                t2 = time.perf_counter()
                times[name]["search"].append((t1 - t0) * 1000)
                times[name]["answer"].append((t2 - t1) * 1000)
                quotes[name] = [q.passage_id for q in answer.quotes]
            if rep == 0:
                same_top += quotes["local"] == quotes["postgres"]
        passes.append(times)
    out: dict[str, Any] = {"questions": len(questions), "repeats": repeats}
    for name in backends:
        out[name] = {
            stage: {
                "p50_ms": round(statistics.median(_pct(p[name][stage], 50) for p in passes), 1),
                "p95_ms": round(statistics.median(_pct(p[name][stage], 95) for p in passes), 1),
            }
            for stage in ("search", "answer")
        }
    out["same_quotes_share"] = round(same_top / len(questions), 3)
    return out


def _timed_encoder(encoder: Encoder, spent: list[float]) -> None:
    """Count the time ``encoder`` spends embedding passages (what ingest calls)."""
    original = encoder.embed_passages

    def embed_passages(*args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t)

    encoder.embed_passages = embed_passages  # type: ignore[method-assign]


def ingestion(config: Config, server: PgServer, encoder: Encoder, articles: int, batch: int) -> dict[str, Any]:
    """Ingest the same articles into a fresh local directory and a fresh database, alternating batches."""
    new = load_file(NEW_ARTICLES)[0][:articles]
    folder = Path(tempfile.mkdtemp(prefix="newsqa-bench-local-"))
    dsn = server.create_database("ingest")
    spent: list[float] = []
    _timed_encoder(encoder, spent)
    local = NewsIndex.open(dataclasses.replace(config, data_dir=str(folder)), encoder=encoder, create=True)
    pg = NewsIndex.open(_on_postgres(config, dsn), encoder=encoder, create=True)
    backends = {"local": local, "postgres": pg}
    seconds = {name: 0.0 for name in backends}
    encoding = {name: 0.0 for name in backends}
    try:
        for n, lo in enumerate(range(0, len(new), batch)):
            chunk = new[lo : lo + batch]
            order = list(backends) if n % 2 == 0 else list(reversed(backends))
            for name in order:
                spent.clear()
                t = time.perf_counter()
                backends[name].ingest(chunk)
                seconds[name] += time.perf_counter() - t
                encoding[name] += sum(spent)
        out: dict[str, Any] = {"articles": len(new), "batch_articles": batch}
        for name, index in backends.items():
            passages = index.backend.counts()[1]
            out[name] = {
                "passages": passages,
                "seconds": round(seconds[name], 1),
                "passages_per_s": round(passages / seconds[name], 1),
                "encoder_share": round(encoding[name] / seconds[name], 3),
                "without_encoder_passages_per_s": round(passages / max(seconds[name] - encoding[name], 1e-9), 1),
            }
        return out
    finally:
        local.close()
        pg.close()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="?", default=DEFAULT_DATA, help="a local data directory")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--questions", type=int, default=290)
    parser.add_argument("--ingest-articles", type=int, default=200, help="0 skips the ingestion test")
    parser.add_argument("--ingest-batch", type=int, default=20)
    parser.add_argument("--shared-buffers", default="1GB")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not (args.data / "newsqa.sqlite3").exists():
        raise SystemExit(f"{args.data} is not a data directory; make one with bench/bench_scale.py make")
    result: dict[str, Any] = {"data": str(args.data), "load_start": _load(), "shared_buffers": args.shared_buffers}
    config = _config(args.data)
    server = start_server(args.shared_buffers)
    try:
        dsn = server.create_database("bench")
        result["migrate"] = copy_in(config, dsn)
        print(json.dumps(result, indent=1), flush=True)
        local = NewsIndex.open(config)
        pg = NewsIndex.open(_on_postgres(config, dsn), encoder=local.encoder)
        try:
            result["answers"] = answers(local, pg, _questions(args.questions), args.repeats)
            result["load_after_answers"] = _load()
            if args.ingest_articles:
                result["ingestion"] = ingestion(config, server, local.encoder, args.ingest_articles, args.ingest_batch)
        finally:
            local.close()
            pg.close()
    finally:
        server.stop()
    result["load_end"] = _load()
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
