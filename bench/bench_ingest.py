"""Ingestion throughput of the encoder settings: articles in, passages stored and indexed.

Usage: .venv/bin/python bench/bench_ingest.py [--articles 100] [--repeats 3]
[--variants torch,onnx,int8] [--eval-dir ../shared/eval/realtimeqa-dev] [--cache-dir DIR]

A variant is ``label=backend:quantize:ingest_threads`` or one of the short names below. Every run
is a fresh process and a fresh data directory ingesting the first ``--articles`` articles of the
evaluation set through ``NewsIndex.ingest`` (what ``newsqa ingest`` calls: passage splitting,
embedding with sentence vectors, SQLite, FAISS and BM25). The model load is timed apart from the
ingest, since it is paid once per process however much is ingested. Variants run interleaved
(A B C A B C ...) so the shared machine's load falls on all of them alike; ratios are against
the first variant (torch fp32 by default) in the same round; the table gives medians over rounds.
The identity column names the ONNX files an ONNX run loaded (int8 ingests load only the int8 copy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EVAL = ROOT.parent / "shared" / "eval" / "realtimeqa-dev"
SHORT = {
    "torch": "torch:none:2",
    "onnx": "onnx:none:2",
    "int8": "onnx:int8:2",
    "torch-t1": "torch:none:1",
    "onnx-t1": "onnx:none:1",
    "int8-t1": "onnx:int8:1",
}


@dataclass(frozen=True)
class Variant:
    """One encoder setting to measure."""

    label: str
    backend: str
    quantize: str
    threads: int

    def env(self, data_dir: Path, cache_dir: Path | None) -> dict[str, str]:
        """Return the environment a child run needs: this setting and nothing from the user."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSQA_")}
        env.update(
            NEWSQA_DATA_DIR=str(data_dir),
            NEWSQA_MODEL_BACKEND=self.backend,
            NEWSQA_MODEL_QUANTIZE=self.quantize,
            NEWSQA_MODEL_INGEST_THREADS=str(self.threads),
        )
        if cache_dir is not None:
            env["NEWSQA_MODEL_CACHE_DIR"] = str(cache_dir)
        return env


def parse_variant(text: str) -> Variant:
    """Parse ``label=backend:quantize:threads`` or a short name such as ``int8``."""
    label, _, spec = text.partition("=")
    spec = spec or SHORT.get(label, "")
    parts = spec.split(":")
    if len(parts) != 3:
        raise SystemExit(f"bad variant {text!r}: use label=backend:quantize:threads or one of {', '.join(SHORT)}")
    return Variant(label, parts[0], parts[1], int(parts[2]))


def child(articles: Path) -> None:
    """Ingest ``articles`` into the configured (empty) data directory; print the timings as JSON."""
    sys.path.insert(0, str(ROOT))
    from retrieval.config import load_config
    from retrieval.ingest.loaders import load_file
    from retrieval.newsindex import NewsIndex

    started = time.perf_counter()
    config = load_config()
    index = NewsIndex.open(config, create=True)
    index.encoder.embed(["warm up"])
    loaded = time.perf_counter()
    items, _ = load_file(articles)
    report = index.ingest(items)
    done = time.perf_counter()
    identity = index.backend.get_meta("encoder")
    sessions = getattr(index.encoder, "loaded", None)  # the ONNX files whose sessions ran
    if sessions is not None:
        identity = f"{identity} [{', '.join(p.name for p in sessions())}]"
    index.close()
    result = {
        "load_s": loaded - started,
        "ingest_s": done - loaded,
        "passages": report.passages,
        "articles": report.added,
        "identity": identity,
        "load_avg": os.getloadavg()[0],
    }
    print(json.dumps(result))


def run(variant: Variant, articles: Path, work: Path, cache_dir: Path | None) -> dict[str, float]:
    """Run one child ingest in a fresh data directory and return its timings."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"ingest-{variant.label}-", dir=work))
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(articles)],
            env=variant.env(data_dir, cache_dir),
            cwd=work,  # so that no ./config.toml of the caller is read
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{variant.label} failed:\n{proc.stderr[-3000:]}")
        result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
        return result
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def subset(source: Path, count: int, target: Path) -> Path:
    """Write the first ``count`` lines of a JSONL file to ``target``."""
    with open(source, encoding="utf-8") as src, open(target, "w", encoding="utf-8") as out:
        for n, line in enumerate(src):
            if n >= count:
                break
            out.write(line)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--articles", type=int, default=100, help="how many articles from the start of the file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", default="torch,onnx,int8", help="comma-separated; the first is the baseline")
    parser.add_argument("--eval-dir", type=Path, default=DEFAULT_EVAL)
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX export cache (default: the user's)")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args.child)
        return 0
    variants = [parse_variant(v) for v in args.variants.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        articles = subset(args.eval_dir / "articles.jsonl", args.articles, work / "articles.jsonl")
        tiny = subset(articles, 2, work / "tiny.jsonl")
        for v in variants:  # builds missing exports and warms the page cache; not timed
            run(v, tiny, work, args.cache_dir)
        rows: dict[str, list[dict[str, float]]] = {v.label: [] for v in variants}
        for r in range(args.repeats):
            for v in variants:
                got = run(v, articles, work, args.cache_dir)
                rows[v.label].append(got)
                print(
                    f"round {r + 1} {v.label:10s} {got['passages']} passages: ingest {got['ingest_s']:.1f} s "
                    f"({got['passages'] / got['ingest_s']:.1f}/s), load {got['load_s']:.1f} s, "
                    f"load avg {got['load_avg']:.2f}",
                    flush=True,
                )
    base = variants[0].label
    print(f"\n{args.articles} articles, {args.repeats} rounds; medians; ratios against {base} in the same round")
    header = ("variant", "passages/s", "ingest s", "load s", "×ingest", "×with load")
    print(
        f"{header[0]:10s} {header[1]:>10s} {header[2]:>9s} {header[3]:>7s} {header[4]:>8s} {header[5]:>10s}  identity"
    )
    for v in variants:
        runs = rows[v.label]
        ingest = [x["ingest_s"] for x in runs]
        total = [x["ingest_s"] + x["load_s"] for x in runs]
        speed = [b["ingest_s"] / x["ingest_s"] for b, x in zip(rows[base], runs, strict=True)]
        speed_total = [(b["ingest_s"] + b["load_s"]) / t for b, t in zip(rows[base], total, strict=True)]
        print(
            f"{v.label:10s} {statistics.median(x['passages'] / x['ingest_s'] for x in runs):10.1f} "
            f"{statistics.median(ingest):9.1f} {statistics.median(x['load_s'] for x in runs):7.1f} "
            f"{statistics.median(speed):8.2f} {statistics.median(speed_total):10.2f}  {runs[0]['identity']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
