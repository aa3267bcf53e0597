"""How the indexes scale: answer latency by stage, ANN recall, memory, size, writes and cold start.

The large collections are made from real material: the passages (text, offsets, titles) and the
stored MiniLM vectors of a real data directory (by default the RealTimeQA dev set, 39,630
passages), replicated as many times as needed. Copy 0 is the original; every other copy's
vectors get Gaussian noise of norm ``--noise`` (0.3: a cosine of about 0.96 to the original,
0.92 between two copies) and are normalised again, and its articles get new ids and URLs. The
texts are repeated unchanged, so BM25 sees each real passage N times. Questions are the
RealTimeQA dev questions, encoded by the real encoder.

    python bench/bench_scale.py make --size 100000 --out /tmp/scale/d100k
    python bench/bench_scale.py run /tmp/scale/d100k --json /tmp/scale/r100k.json

``run`` prints one JSON object: figures are medians over ``--repeats`` passes of the question
set (p50 and p95 per pass), with the exact (flat) index of the same vectors as the baseline in
the same run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval.config import Config, load_config  # noqa: E402
from retrieval.newsindex import NewsIndex  # noqa: E402
from retrieval.query import parse_question  # noqa: E402
from retrieval.search.lexical import LexicalIndex  # noqa: E402
from retrieval.search.vector import FaissIndex  # noqa: E402
from retrieval.storage.local.locking import writer_lock  # noqa: E402
from retrieval.storage.local.store import Store  # noqa: E402

# A RealTimeQA data dir built by `newsqa ingest` with sentence vectors (schema 2).
SOURCE = Path("/work/evaldata/rtqa2")
QUESTIONS = ROOT.parent / "shared" / "eval" / "realtimeqa-dev" / "questions.jsonl"
NEW_ARTICLES = ROOT.parent / "shared" / "eval" / "squad-dev" / "articles.jsonl"


def make(size: int, out: Path, source: Path, noise: float, seed: int = 0) -> dict[str, Any]:
    """Write a data directory of ``size`` passages replicated from ``source`` (no index files)."""
    out.mkdir(parents=True, exist_ok=False)
    started = time.perf_counter()
    Store(out / "newsqa.sqlite3", create=True).close()
    con = sqlite3.connect(out / "newsqa.sqlite3", isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("ATTACH DATABASE ? AS src", (f"file:{source / 'newsqa.sqlite3'}?mode=ro",))
    n_src = con.execute("SELECT COUNT(*) FROM src.passages").fetchone()[0]
    step = con.execute("SELECT MAX(id) FROM src.passages").fetchone()[0] + 1
    copies = -(-size // n_src)
    rng = np.random.default_rng(seed)
    con.execute("BEGIN")
    for key in ("encoder", "dim"):
        con.execute("INSERT OR REPLACE INTO meta (key, value) SELECT key, value FROM src.meta WHERE key = ?", (key,))
    con.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('generation', '1')")
    written = 0
    for copy in range(copies):
        tag = "" if copy == 0 else f"-c{copy}"
        con.execute(
            "INSERT INTO articles (id, url, title, source, published, language, text, content_hash, duplicate_of,"
            " fetched_at, added_at) SELECT id || ?, url || ?, title, source, published, language, text,"
            " content_hash || ?, NULL, fetched_at, added_at FROM src.articles WHERE duplicate_of IS NULL",
            (tag, "" if copy == 0 else f"?copy={copy}", tag),
        )
        # Sentence vectors are copied as they are (the passage vectors of copies get noise).
        rows = con.execute(
            'SELECT id, article_id, ordinal, start, "end", text, embedding, sentences FROM src.passages ORDER BY id'
        ).fetchall()
        rows = rows[: size - written]
        vecs = np.vstack([np.frombuffer(r[6], dtype=np.float32) for r in rows])
        if copy:
            vecs = vecs + rng.normal(0, noise / np.sqrt(vecs.shape[1]), vecs.shape).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        con.executemany(
            'INSERT INTO passages (id, article_id, ordinal, start, "end", text, embedding, sentences)'
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (r[0] + copy * step, r[1] + tag, r[2], r[3], r[4], r[5], v.astype(np.float32).tobytes(), r[7])
                for r, v in zip(rows, vecs, strict=True)
            ],
        )
        written += len(rows)
    con.execute("COMMIT")
    con.close()
    return {"passages": written, "copies": copies, "noise": noise, "seconds": round(time.perf_counter() - started, 1)}


def _config(data: Path, **index: Any) -> Config:
    # NEWSQA_INDEX_* (and other) settings from the environment apply, as for `newsqa`.
    config = load_config(None, env={**os.environ, "NEWSQA_DATA_DIR": str(data)})
    return dataclasses.replace(config, index=dataclasses.replace(config.index, **index)) if index else config


def build(data: Path) -> dict[str, Any]:
    """Build the index files from the stored vectors and texts (as `newsqa check --repair` does)."""
    backend = NewsIndex.open(_config(data)).backend  # the local backend's own index files
    started = time.perf_counter()
    with writer_lock(data):
        gen = backend.store.generation()
        t0 = time.perf_counter()
        vectors = backend.indexes.build_vectors(gen)
        t1 = time.perf_counter()
        _, lexical = backend.indexes.rebuild(gen, vectors)
        t2 = time.perf_counter()
        backend.indexes.save(vectors, lexical)
    return {
        "kind": vectors.kind,
        "vector_build_s": round(t1 - t0, 1),
        "lexical_build_s": round(t2 - t1, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def _rss() -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return out


def _questions(limit: int) -> list[str]:
    lines = QUESTIONS.read_text().splitlines()[:limit]
    return [json.loads(line)["question"] for line in lines]


def latency(data: Path, repeats: int, limit: int, exact: bool = False, skip_recall: bool = False) -> dict[str, Any]:
    """Time each stage of answering, p50/p95 per pass, medians over passes; recall against exact.

    With ``exact`` the vector index is replaced by an exact flat index of the same vectors (the
    baseline), built in memory.
    """
    rss_start = _rss()
    config = _config(data)
    index = NewsIndex.open(config)
    encoder = index.encoder
    rss_model = _rss()
    t = time.perf_counter()
    backend = index.backend  # the local backend's own index files
    vectors, lexical = backend.indexes.load(save=False)
    load_s = time.perf_counter() - t
    if exact and vectors.kind != "flat":
        batches = ((ids, vecs) for ids, _, vecs in backend.store.iter_passages())
        settings = dataclasses.replace(vectors.settings, approximate_above=10**12)
        vectors = FaissIndex.build(vectors.dim, batches, len(vectors), vectors.generation, settings)
        backend.indexes.use(vectors, lexical)
    rss_indexes = _rss()
    questions = _questions(limit)
    depth = config.search.candidates
    index.ask(questions[0])  # warm up
    stages = ("encode", "dense", "lexical", "retrieve", "answer")
    passes: list[dict[str, list[float]]] = []
    for _ in range(repeats):
        times: dict[str, list[float]] = {s: [] for s in stages}
        for q in questions:
            query = parse_question(q, config.search.max_question_chars)
            t0 = time.perf_counter()
            qvec = encoder.embed_one(query.text)
            t1 = time.perf_counter()
            vectors.search(qvec, depth)
            t2 = time.perf_counter()
            lexical.search(query.text, depth)
            t3 = time.perf_counter()
            backend.retriever().search(query, qvec, 14, config.search.fusion)
            t4 = time.perf_counter()
            index.ask(q)
            t5 = time.perf_counter()
            for s, v in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                times[s].append(v * 1000)
        passes.append(times)
    rss_after = _rss()
    result: dict[str, Any] = {"questions": len(questions), "repeats": repeats, "kind": vectors.kind}
    for s in stages:
        result[s] = {
            "p50_ms": round(statistics.median(_pct(p[s], 50) for p in passes), 2),
            "p95_ms": round(statistics.median(_pct(p[s], 95) for p in passes), 2),
        }
    result["index_load_s"] = round(load_s, 2)
    result["rss_mb"] = {"start": rss_start, "model": rss_model, "indexes": rss_indexes, "after": rss_after}
    if not exact and not skip_recall:
        result["recall"] = _recall(index, vectors, questions, depth)
    return result


def _recall(index: NewsIndex, vectors: FaissIndex, questions: list[str], depth: int) -> dict[str, Any]:
    """Recall@10 and @candidates of the index in use against an exact flat index of the same vectors."""
    if vectors.kind == "flat":
        return {"note": "exact index in use"}
    store = index.backend.store  # the local backend's SQLite store
    gen = store.generation()
    batches = ((ids, vecs) for ids, _, vecs in store.iter_passages())
    exact = FaissIndex.build(
        vectors.dim, batches, len(vectors), gen, dataclasses.replace(vectors.settings, approximate_above=10**12)
    )
    qvecs = [index.encoder.embed_one(q) for q in questions]
    wanted = [exact.search(v, depth)[0] for v in qvecs]
    out: dict[str, Any] = {}
    for ef in sorted({64, 128, 256, 512, vectors.settings.ef_search}):
        probe = dataclasses.replace(vectors.settings, ef_search=ef)
        original, vectors.settings = vectors.settings, probe
        rec10, recd, ann_ms = [], [], []
        for v, want in zip(qvecs, wanted, strict=True):
            t = time.perf_counter()
            got = vectors.search(v, depth)[0]
            ann_ms.append((time.perf_counter() - t) * 1000)
            rec10.append(len(set(got[:10].tolist()) & set(want[:10].tolist())) / 10)
            recd.append(len(set(got.tolist()) & set(want.tolist())) / len(want))
        vectors.settings = original
        out[f"ef{ef}"] = {
            "recall@10": round(float(np.mean(rec10)), 4),
            f"recall@{depth}": round(float(np.mean(recd)), 4),
            "p50_ms": round(_pct(ann_ms, 50), 3),
        }
    # The copies of one real passage are near-duplicates; also count a top-10 hit when it is a
    # copy of the same real passage as one of the exact top 10.
    with store.connection() as con:
        row = con.execute("SELECT MAX(id) FROM passages WHERE article_id NOT LIKE '%-c%'").fetchone()
    step = int(row[0]) + 1
    ef = vectors.settings.ef_search
    by_source = []
    for v, want in zip(qvecs, wanted, strict=True):
        got = vectors.search(v, depth)[0]
        by_source.append(len({i % step for i in got[:10].tolist()} & {i % step for i in want[:10].tolist()}))
        by_source[-1] /= max(len({i % step for i in want[:10].tolist()}), 1)
    out[f"ef{ef}_recall@10_by_real_passage"] = round(float(np.mean(by_source)), 4)
    flat_ms = []
    for v in qvecs:
        t = time.perf_counter()
        exact.search(v, depth)
        flat_ms.append((time.perf_counter() - t) * 1000)
    out["exact_p50_ms"] = round(_pct(flat_ms, 50), 2)
    out["exact_p95_ms"] = round(_pct(flat_ms, 95), 2)
    return out


def sizes(data: Path, passages: int) -> dict[str, Any]:
    """Bytes on disk per kind of file, and per passage."""
    groups: dict[str, int] = {}
    for f in data.rglob("*"):
        if f.is_file():
            name = f.name
            kind = (
                "sqlite"
                if name.startswith("newsqa.sqlite3")
                else "hnsw"
                if "-hnsw-" in name
                else "lexical"
                if name.startswith("lexical") or f.parent.name.startswith("lexical")
                else "faiss"
                if name.startswith("index")
                else "other"
            )
            groups[kind] = groups.get(kind, 0) + f.stat().st_size
    total = sum(groups.values())
    return {
        "mb": {k: round(v / 2**20, 1) for k, v in groups.items()},
        "bytes_per_passage": {k: round(v / passages) for k, v in groups.items()} | {"total": round(total / passages)},
    }


def cold(data: Path, repeats: int) -> dict[str, Any]:
    """Process start to printed answer for `newsqa ask`, and `newsqa --help`; medians."""
    exe = str(Path(sys.executable).with_name("newsqa"))
    question = _questions(1)[0]
    out: dict[str, Any] = {}
    for name, args in (("help", [exe, "--help"]), ("ask", [exe, "--data-dir", str(data), "ask", question])):
        times, peaks = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            # GNU time reports the child's own peak RSS (getrusage of children would also count
            # the pages a forked child shares with this process).
            proc = subprocess.run(["/usr/bin/time", "-f", "%M", *args], capture_output=True, text=True, check=False)
            times.append(time.perf_counter() - t)
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed: {proc.stderr.strip()[-300:]}")
            peaks.append(int(proc.stderr.strip().splitlines()[-1]) / 1024)
        out[name] = {
            "median_s": round(statistics.median(times), 2),
            "max_s": round(max(times), 2),
            "peak_rss_mb": round(max(peaks), 1),
        }
    return out


def writes(data: Path, articles: int) -> dict[str, Any]:
    """Ingest a few new articles: total, index update, against rebuilding BM25 whole (the old way)."""
    from retrieval.ingest.loaders import load_file

    config = _config(data)
    index = NewsIndex.open(config)
    new = [a for a in load_file(NEW_ARTICLES)[0][:articles]]
    finish: list[float] = []
    indexes = index.backend.indexes  # the local backend's index files
    original = indexes.finish_write

    def timed(vectors: FaissIndex) -> None:
        t = time.perf_counter()
        original(vectors)
        finish.append(time.perf_counter() - t)

    indexes.finish_write = timed  # type: ignore[method-assign]
    t = time.perf_counter()
    report = index.ingest(new)
    total = time.perf_counter() - t
    t = time.perf_counter()
    fresh = LexicalIndex.build_batches(((i, x) for i, x, _ in index.backend.store.iter_passages()), 0)
    full_bm25 = time.perf_counter() - t
    agreement = _agreement(indexes.snapshot()[1], fresh, _questions(290))
    t = time.perf_counter()
    index.remove(new[0].url)
    remove_s = time.perf_counter() - t
    delta = indexes.snapshot()[1].delta_size
    for article in new[1:]:  # leave the collection as it was, for the next run
        index.remove(article.url)
    return {
        "articles": report.added,
        "passages": report.passages,
        "ingest_s": round(total, 2),
        "index_update_s": round(finish[0], 2) if finish else None,
        "bm25_full_rebuild_s": round(full_bm25, 2),
        "remove_s": round(remove_s, 2),
        "lexical_delta": delta,
        "lexical_top10_agreement_with_fresh_build": agreement,
    }


def _agreement(a: LexicalIndex, b: LexicalIndex, questions: list[str]) -> float:
    same = []
    for q in questions:
        text = parse_question(q, 2000).text
        want = set(b.search(text, 10)[0].tolist())
        same.append(len(set(a.search(text, 10)[0].tolist()) & want) / max(len(want), 1))
    return round(float(np.mean(same)), 4)


def delta_quality(data: Path, share: float) -> dict[str, Any]:
    """BM25 top-10 agreement of a base + delta of ``share`` of the passages with a fresh build."""
    store = Store(data / "newsqa.sqlite3")
    batches = list(store.iter_passages())
    ids = np.concatenate([b[0] for b in batches])
    texts = [t for b in batches for t in b[1]]
    cut = int(len(ids) * (1 - share))
    t = time.perf_counter()
    fresh = LexicalIndex.build(ids, texts, 0)
    full_s = time.perf_counter() - t
    base = LexicalIndex.build(ids[:cut], texts[:cut], 0)
    t = time.perf_counter()
    grown = base.updated(ids[cut:], texts[cut:], np.empty(0, np.int64), 1)
    delta_s = time.perf_counter() - t
    return {
        "delta_share": share,
        "delta_passages": len(ids) - cut,
        "top10_agreement": _agreement(grown, fresh, _questions(290)),
        "full_build_s": round(full_s, 1),
        "delta_build_s": round(delta_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="make a replicated data directory and build its indexes")
    m.add_argument("--size", type=int, required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--source", type=Path, default=SOURCE)
    m.add_argument("--noise", type=float, default=0.3)
    b = sub.add_parser("build", help="build the index files of a data directory again")
    b.add_argument("data", type=Path)
    r = sub.add_parser("run", help="measure a data directory made by `make`")
    r.add_argument("data", type=Path)
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--questions", type=int, default=290)
    r.add_argument("--cold-repeats", type=int, default=3)
    r.add_argument("--write-articles", type=int, default=20, help="0 skips the write test (it changes the data)")
    r.add_argument("--baseline", action="store_true", help="also answer with an exact flat index, same run")
    r.add_argument("--delta-share", type=float, default=0.0, help="measure BM25 base + delta of this share")
    r.add_argument("--skip-recall", action="store_true", help="do not measure recall against exact search")
    r.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        result = {"make": make(args.size, args.out, args.source, args.noise)}
        result["build"] = build(args.out)
        print(json.dumps(result, indent=1))
        return
    if args.command == "build":
        print(json.dumps({"build": build(args.data)}, indent=1))
        return
    data: Path = args.data
    passages = Store(data / "newsqa.sqlite3").counts()[1]
    os.environ.setdefault("NEWSQA_DATA_DIR", str(data))
    result: dict[str, Any] = {
        "passages": passages,
        "latency": latency(data, args.repeats, args.questions, skip_recall=args.skip_recall),
    }
    if args.baseline:
        result["latency_exact"] = latency(data, args.repeats, args.questions, exact=True)
    result["size"] = sizes(data, passages)
    result["cold"] = cold(data, args.cold_repeats)
    if args.write_articles:
        result["writes"] = writes(data, args.write_articles)
    if args.delta_share:
        result["lexical_delta_quality"] = delta_quality(data, args.delta_share)
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)


if __name__ == "__main__":
    main()
