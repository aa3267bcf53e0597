"""Sweep fusion settings on a built data dir and print Recall@k / MRR@10 for each (no answers built).

    python bench/tune_fusion.py DATA_DIR QUESTIONS.jsonl [--limit N]

Loads the index and the model once; each setting re-ranks the same questions.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.config import load_config
from retrieval.evaluation import evaluate, read_questions
from retrieval.newsindex import NewsIndex


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("questions")
    parser.add_argument("--limit", type=int, default=500)
    parser.add_argument("--weights", default="0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--sentence-weights", default="0.3", help="rerank weights of the best sentence (0 = off)")
    parser.add_argument("--depths", default="5", help="rerank depths (groups whose sentences are scored)")
    parser.add_argument("--no-rrf", action="store_true", help="sweep weighted fusion only")
    args = parser.parse_args()
    config = load_config(env=os.environ)
    config = dataclasses.replace(config, data_dir=args.data_dir)
    index = NewsIndex.open(config)
    questions = read_questions(Path(args.questions), args.limit)
    sentence_weights = [float(sw) for sw in args.sentence_weights.split(",")]
    depths = [int(d) for d in args.depths.split(",")]
    grid = [(sw, d) for sw in sentence_weights for d in depths]
    settings = [] if args.no_rrf else [("rrf", 0.5, *g) for g in grid]
    settings += [("weighted", float(w), *g) for w in args.weights.split(",") for g in grid]
    print(f"{'fusion':<10} {'w':>4} {'sent':>5} {'depth':>5} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7}")
    for fusion, weight, sentence, depth in settings:
        search = dataclasses.replace(
            config.search,
            fusion=fusion,
            dense_weight=weight,
            sentence_weight=sentence,
            rerank_depth=depth,
        )
        index.config = dataclasses.replace(config, search=search)
        # method=None: the shipped path (collapse + sentence rerank) with these settings.
        r = evaluate(index, questions, None, full=False)
        figures = f"{r.recall[1]:>6.3f} {r.recall[5]:>6.3f} {r.recall[10]:>6.3f} {r.mrr10:>7.3f}"
        print(f"{fusion:<10} {weight:>4} {sentence:>5} {depth:>5} {figures}", flush=True)


if __name__ == "__main__":
    main()
