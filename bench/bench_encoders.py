"""Compare the encoder backends: passages/s, single-query latency, agreement, cold start.

Usage: .venv/bin/python bench/bench_encoders.py [--passages 2000] [--queries 200]
[--threads 1,2] [--cache-dir DIR] [--eval-dir ../shared/eval/realtimeqa-dev]

Passages are ~90-word chunks of the RealTimeQA dev articles (cut on sentence ends); queries are
its questions. Every throughput figure is compared with torch fp32 at the same thread count in
the same run, since the shared machine's speed drifts between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval.config import ModelConfig  # noqa: E402
from retrieval.models.encoder import Encoder, SentenceTransformerEncoder  # noqa: E402
from retrieval.models.onnx_encoder import OnnxEncoder  # noqa: E402

DEFAULT_EVAL = ROOT.parent / "shared" / "eval" / "realtimeqa-dev"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"”’)])\s+|\n\s*\n")


@dataclass
class Row:
    """One measured configuration."""

    label: str
    threads: int
    sorted_batches: bool
    seconds: float
    count: int
    vectors: np.ndarray = field(repr=False)

    @property
    def rate(self) -> float:
        """Return passages per second."""
        return self.count / self.seconds


def build_passages(articles: Path, limit: int, target_words: int = 90) -> list[str]:
    """Cut each article into chunks of about ``target_words`` words ending on a sentence end."""
    passages: list[str] = []
    with open(articles, encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line).get("text", "")
            chunk: list[str] = []
            words = 0
            for sentence in SENTENCE_END.split(text):
                sentence = " ".join(sentence.split())
                if not sentence:
                    continue
                chunk.append(sentence)
                words += len(sentence.split())
                if words >= target_words:
                    passages.append(" ".join(chunk))
                    chunk, words = [], 0
            if chunk:
                passages.append(" ".join(chunk))
            if len(passages) >= limit:
                break
    return passages[:limit]


def load_questions(path: Path) -> list[str]:
    """Return the question texts of a questions.jsonl file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["question"] for line in fh if line.strip()]


def embed_sorted(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """Embed texts in length-sorted batches through the base class path; restore the order."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    vectors = Encoder.embed(encoder, [texts[i] for i in order])
    out = np.empty_like(vectors)
    out[order] = vectors
    return out


def run_once(encoder: Encoder, texts: Sequence[str], sort: bool) -> np.ndarray:
    """Embed texts with or without length-sorted batches."""
    if sort and type(encoder).embed is not Encoder.embed:
        return encoder.embed(texts)  # the backend sorts by itself
    if sort:
        return embed_sorted(encoder, texts)
    return Encoder.embed(encoder, texts)


def measure(configs: Sequence[tuple[str, Encoder, bool]], texts: Sequence[str], threads: int, slices: int) -> list[Row]:
    """Time every configuration over all texts, round-robin over slices of the texts.

    Other people's jobs come and go on this machine; interleaving the configurations slice by
    slice spreads that noise evenly instead of penalising whichever ran during a busy minute.
    """
    for _, encoder, sort in configs:
        encoder.set_threads(threads)
        run_once(encoder, texts[:32], sort)  # warm up: first runs allocate and plan
    seconds = [0.0] * len(configs)
    parts: list[list[np.ndarray]] = [[] for _ in configs]
    step = -(-len(texts) // slices)
    for lo in range(0, len(texts), step):
        piece = texts[lo : lo + step]
        for i, (_, encoder, sort) in enumerate(configs):
            start = time.perf_counter()
            parts[i].append(run_once(encoder, piece, sort))
            seconds[i] += time.perf_counter() - start
    rows = []
    for i, (label, _, sort) in enumerate(configs):
        row = Row(label, threads, sort, seconds[i], len(texts), np.concatenate(parts[i]))
        print(f"  {label:<12} threads={threads} sorted={sort!s:<5} {row.rate:7.1f} passages/s", flush=True)
        rows.append(row)
    return rows


def latency(encoder: Encoder, questions: Sequence[str]) -> tuple[float, float]:
    """Return p50 and p95 in milliseconds of embedding one question at a time."""
    encoder.set_threads(1)
    for q in questions[:10]:
        encoder.embed_one(q)
    times = []
    for q in questions:
        start = time.perf_counter()
        encoder.embed_one(q)
        times.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(times, n=100)
    return cuts[49], cuts[94]


def agreement(ref_p: np.ndarray, ref_q: np.ndarray, p: np.ndarray, q: np.ndarray, k: int = 10) -> dict[str, float]:
    """Compare vectors and top-k rankings with the reference backend's."""
    cos_p = (ref_p * p).sum(axis=1)
    cos_q = (ref_q * q).sum(axis=1)
    top_ref = np.argsort(-(ref_q @ ref_p.T), axis=1)[:, :k]
    top = np.argsort(-(q @ p.T), axis=1)[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top_ref, top, strict=True)]
    return {
        "cos_min": float(min(cos_p.min(), cos_q.min())),
        "cos_mean": float(np.concatenate([cos_p, cos_q]).mean()),
        "max_abs": float(np.abs(ref_p - p).max()),
        "top1": float((top_ref[:, 0] == top[:, 0]).mean()),
        "top10": float(np.mean(overlap)),
    }


COLD_START = """
import sys, time
t0 = time.perf_counter()
from pathlib import Path
from retrieval.config import ModelConfig
from retrieval.models.loading import load_encoder
from retrieval.models.onnx_encoder import OnnxEncoder
backend, quantize, cache = sys.argv[1], sys.argv[2], sys.argv[3]
config = ModelConfig(backend=backend, quantize=quantize)
if backend == "onnx":
    enc = OnnxEncoder.from_config(config, threads=1, cache_dir=Path(cache))
else:
    enc = load_encoder(config, threads=1)
enc.embed_one("Who won the election?")
# VmHWM, not ru_maxrss: Linux carries the parent's peak across fork and exec into ru_maxrss.
status = open("/proc/self/status").read().split("VmHWM:")[1].split()
rss = int(status[0]) / 1024
print(time.perf_counter() - t0, rss, "torch" in sys.modules)
"""


def cold_start(backend: str, quantize: str, cache: Path) -> tuple[float, float, float, bool]:
    """Return (start to first vector s, in-process part s, peak RSS MB, torch imported)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", COLD_START, backend, quantize, str(cache)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    inner, rss, torch_loaded = done.stdout.split()[-3:]
    return wall, float(inner), float(rss), torch_loaded == "True"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--slices", type=int, default=8, help="interleave the configurations over this many slices of passages"
    )
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="ONNX export cache (default: ~/.cache/newsqa/models)"
    )
    parser.add_argument("--no-sort-compare", action="store_true", help="skip the sorted/unsorted batching comparison")
    parser.add_argument("--no-cold-start", action="store_true")
    args = parser.parse_args(argv)

    articles = args.eval_dir / "articles.jsonl"
    questions_file = args.eval_dir / "questions.jsonl"
    if not articles.is_file() or not questions_file.is_file():
        print(
            f"bench_encoders: no evaluation data at {args.eval_dir} (expected articles.jsonl and "
            "questions.jsonl; it lives in the shared folder ../shared beside the repo); "
            "pass --eval-dir DIR",
            file=sys.stderr,
        )
        return 2
    passages = build_passages(articles, args.passages)
    questions = load_questions(questions_file)
    short = sorted(questions, key=len)[: args.queries]  # "short questions", as users type them
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    words = [len(p.split()) for p in passages]
    print(
        f"{len(passages)} passages (mean {statistics.mean(words):.0f} words), "
        f"{len(questions)} questions for agreement, {len(short)} for latency; "
        f"batch {args.batch_size}",
        flush=True,
    )

    from retrieval.models.onnx_files import default_cache_dir

    cache = args.cache_dir or default_cache_dir()
    start = time.perf_counter()
    encoders: dict[str, Encoder] = {
        "torch fp32": SentenceTransformerEncoder(batch_size=args.batch_size, threads=1),
        "onnx fp32": OnnxEncoder.from_config(
            ModelConfig(backend="onnx", quantize="none", batch_size=args.batch_size), 1, cache
        ),
        "onnx int8": OnnxEncoder.from_config(
            ModelConfig(backend="onnx", quantize="int8", batch_size=args.batch_size), 1, cache
        ),
    }
    print(f"encoders ready in {time.perf_counter() - start:.1f} s (exports cached in {cache})")

    # Each backend's own embed(): torch batches in input order, OnnxEncoder sorts by length.
    native_sort = {"torch fp32": False, "onnx fp32": True, "onnx int8": True}
    rows: list[Row] = []
    for n in threads:
        print(f"throughput, {n} thread(s), load average {os.getloadavg()[0]:.1f}:", flush=True)
        configs = [(label, enc, native_sort[label]) for label, enc in encoders.items()]
        if n == threads[0] and not args.no_sort_compare:
            configs += [(label, encoders[label], not native_sort[label]) for label in ("torch fp32", "onnx fp32")]
        rows += measure(configs, passages, n, args.slices)

    print(f"single-query latency, 1 thread, load average {os.getloadavg()[0]:.1f}", flush=True)
    lat = {label: latency(enc, short) for label, enc in encoders.items()}

    print("agreement with torch fp32:", flush=True)
    for enc in encoders.values():
        enc.set_threads(1)
    # Questions as answering encodes them (an int8 OnnxEncoder encodes questions in fp32).
    query_vectors = {label: enc.embed_queries(questions) for label, enc in encoders.items()}
    first = {r.label: r for r in rows if r.threads == threads[0] and r.sorted_batches == native_sort[r.label]}
    ref_p, ref_q = first["torch fp32"].vectors, query_vectors["torch fp32"]
    agree = {label: agreement(ref_p, ref_q, first[label].vectors, query_vectors[label]) for label in encoders}

    print()
    print("| backend | threads | length-sorted batches | passages/s | vs torch fp32 (same threads, unsorted) |")
    print("|---|---|---|---|---|")
    base = {r.threads: r.rate for r in rows if r.label == "torch fp32" and not r.sorted_batches}
    for r in rows:
        print(
            f"| {r.label} | {r.threads} | {'yes' if r.sorted_batches else 'no'} | "
            f"{r.rate:.1f} | {r.rate / base[r.threads]:.2f}× |"
        )
    print()
    print(
        "| backend | query p50 ms | query p95 ms | min cosine | mean cosine | max abs diff | "
        "top-1 agreement | top-10 overlap |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label in encoders:
        a = agree[label]
        p50, p95 = lat[label]
        print(
            f"| {label} | {p50:.1f} | {p95:.1f} | {a['cos_min']:.6f} | {a['cos_mean']:.6f} | "
            f"{a['max_abs']:.1e} | {a['top1']:.3f} | {a['top10']:.3f} |"
        )
    print(
        f"(agreement: {len(questions)} questions against the {len(passages)} passages; "
        "cosines over passages and questions)"
    )

    if not args.no_cold_start:
        print()
        print("| cold start (new process → first vector) | wall s | in-process s | peak RSS MB | torch imported |")
        print("|---|---|---|---|---|")
        for backend, quantize in (("onnx", "int8"), ("onnx", "none"), ("torch", "none")):
            runs = [cold_start(backend, quantize, cache) for _ in range(3)]
            wall = statistics.median(r[0] for r in runs)
            inner = statistics.median(r[1] for r in runs)
            rss = statistics.median(r[2] for r in runs)
            print(f"| {backend} {quantize} | {wall:.2f} | {inner:.2f} | {rss:.0f} | {runs[0][3]} |")
        print("(median of 3 runs, files already in the page cache)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
