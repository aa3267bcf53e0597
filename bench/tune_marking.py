"""Tune best-sentence marking offline: cache the top passage's sentences once, then sweep weights.

    python bench/tune_marking.py DATA_DIR QUESTIONS.jsonl [--limit N]

For each question whose first-ranked passage contains a gold answer, the share of weight
settings' marked sentence (or pair) that contains it.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from retrieval.answering.highlight import best_window, sentence_scores
from retrieval.config import Config
from retrieval.evaluation import _norm, read_questions
from retrieval.ingest.sentences import sentence_spans
from retrieval.newsindex import NewsIndex
from retrieval.search.tokens import tokenize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("questions")
    parser.add_argument("--limit", type=int, default=500)
    args = parser.parse_args()
    index = NewsIndex.open(Config(data_dir=args.data_dir))
    cases = []
    for q in read_questions(Path(args.questions), args.limit):
        top = index.rank(q.question, 1)
        if not top:
            continue
        text = top[0].hit.passage.text
        gold = [_norm(a) for a in q.answers]
        if not any(g in _norm(text) for g in gold):
            continue
        query = index.parse(q.question)
        qvec = index.encoder.embed_one(query.text)
        # The vectors answers use: pooled at ingest, or encoded alone for passages stored without.
        stored = index.backend.sentence_vectors([top[0].hit.passage.id]).get(top[0].hit.passage.id)
        spans = list(stored.spans) if stored is not None else sentence_spans(text)
        sentences = [text[a:b] for a, b in spans]
        vecs = stored.vectors if stored is not None else index.encoder.embed(sentences)
        idf = index.backend.retriever().idf(tokenize([query.text])[0])
        cases.append((query.text, sentences, vecs, qvec, idf, gold))
    print(f"{len(cases)} questions whose first passage holds the answer")
    print(f"{'lexical':>7} {'type':>5} {'pair':>5} {'marked':>7} {'words':>6}")
    for lw, tw, pm in itertools.product([0.3, 0.5, 0.8, 1.2], [0.0, 0.15, 0.3, 0.5], [0.0, 0.05]):
        hits = 0
        words = []
        for text, sentences, vecs, qvec, idf, gold in cases:
            scores = sentence_scores(text, sentences, vecs, qvec, idf, lexical_weight=lw, type_weight=tw)
            first, last = best_window(scores, pm)
            marked = " ".join(sentences[first : last + 1])
            hits += any(g in _norm(marked) for g in gold)
            words.append(len(marked.split()))
        print(f"{lw:>7} {tw:>5} {pm:>5} {hits / len(cases):>7.3f} {np.median(words):>6.0f}")


if __name__ == "__main__":
    main()
