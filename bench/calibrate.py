"""Choose the abstention threshold (and weights) from `newsqa eval --details` files.

    python bench/calibrate.py --answerable A.jsonl [A2.jsonl ...] --off-topic O.jsonl [O2.jsonl ...]

Answerable files come from questions asked of the articles that answer them, off-topic files from
questions asked of unrelated articles. The confidence is recomputed from each question's parts
(per top passage: cosine, term coverage, share of names, term coverage of its best sentence; and
the contrast of the best passage with the collection's background) for a grid of weights; for
each, the script reports how many answerable questions found in the top 5 are kept when 90% of the
off-topic ones are refused, and how many off-topic ones are refused when --keep (95%) of the
answerable ones are kept. --curve prints the trade-off of the configured weights threshold by
threshold.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
from pathlib import Path

from retrieval.answering.abstention import combine_confidence
from retrieval.config import SearchConfig

Weights = tuple[float, float, float, float]  # coverage, names, sentence terms, contrast


def _load(paths: list[str]) -> list[dict[str, object]]:
    rows = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            # Only the shipped method answers users; the baselines' rows rank differently.
            if "confidence_parts" in row and str(row.get("method", "")).endswith("(shipped)"):
                rows.append(row)
    return rows


def _answerable(paths: list[str]) -> list[dict[str, object]]:
    """The answerable questions found in the top 5: those abstention must keep."""
    return [r for r in _load(paths) if isinstance(r.get("rank"), int) and int(r["rank"]) <= 5]  # type: ignore[arg-type]


def _weighted(weights: Weights) -> SearchConfig:
    cover, names, sentence, contrast = weights
    return dataclasses.replace(
        SearchConfig(),
        coverage_weight=cover,
        names_weight=names,
        sentence_terms_weight=sentence,
        contrast_weight=contrast,
    )


def _keep_cut(answerable: list[float], keep: float) -> float:
    """The largest threshold that keeps ``keep`` of the (sorted) answerable confidences."""
    return answerable[max(0, int((1 - keep) * len(answerable)))]


def _confidence(row: dict[str, object], config: SearchConfig) -> float:
    parts = row["confidence_parts"]
    assert isinstance(parts, list)
    # Files written before a part was recorded: every name present, no sentence share.
    full = [[*p, *(1.0, 0.0)[len(p) - 2 :]] if len(p) < 4 else p for p in parts]
    seen = row.get("contrast")
    return combine_confidence(full, None if seen is None else float(seen), config)  # type: ignore[arg-type]


def _share(values: list[float], cut: float, below: bool) -> float:
    return sum((v < cut) == below for v in values) / max(1, len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answerable", nargs="+", required=True)
    parser.add_argument("--off-topic", nargs="+", required=True)
    parser.add_argument("--refuse", type=float, default=0.90)
    parser.add_argument("--keep", type=float, default=0.95)
    parser.add_argument("--curve", action="store_true", help="the configured weights' trade-off per threshold")
    parser.add_argument("--check-answerable", nargs="+", help="held-out answerable files (with --check-off-topic)")
    parser.add_argument("--check-off-topic", nargs="+", help="held-out off-topic files")
    args = parser.parse_args()
    good = _answerable(args.answerable)
    bad = _load(args.off_topic)
    print(f"{len(good)} answerable questions found in the top 5, {len(bad)} off-topic questions")
    config = SearchConfig()
    if args.curve:
        weights = (config.coverage_weight, config.names_weight, config.sentence_terms_weight, config.contrast_weight)
        kept_all = [_confidence(r, config) for r in good]
        off_all = [_confidence(r, config) for r in bad]
        print(f"weights {weights}; {'threshold':>9} {'refused':>8} {'kept@5':>7}")
        for step in range(30, 160, 5):
            cut = step / 100
            print(f"{cut:>9.2f} {_share(off_all, cut, True):>8.3f} {_share(kept_all, cut, False):>7.3f}")
        return
    print(
        f"{'coverage':>8} {'names':>6} {'sentence':>8} {'contrast':>8} | {'cut@90%':>7} {'kept':>6} |"
        f" {'cut@95%':>7} {'refused':>7}"
    )
    found: list[tuple[float, Weights, float]] = []  # refused at --keep, weights, their threshold
    for weights in itertools.product((0.0, 0.3), (0.0, 0.2), (0.0, 0.3, 0.6, 1.0), (0.0, 1.0, 2.0, 3.0)):
        weighted = _weighted(weights)
        off = sorted(_confidence(r, weighted) for r in bad)
        ans = sorted(_confidence(r, weighted) for r in good)
        # The smallest threshold above the required share of off-topic confidences, and the
        # largest that keeps the required share of answerable ones.
        cut90 = off[min(len(off) - 1, int(args.refuse * len(off)))] + 1e-6
        cut95 = _keep_cut(ans, args.keep)
        found.append((_share(off, cut95, True), weights, cut95))
        print(
            f"{weights[0]:>8} {weights[1]:>6} {weights[2]:>8} {weights[3]:>8} |"
            f" {cut90:>7.3f} {_share(ans, cut90, False):>6.3f} | {cut95:>7.3f} {found[-1][0]:>7.3f}"
        )
    if args.check_answerable and args.check_off_topic:
        _check(found, args.check_answerable, args.check_off_topic, args.keep)


def _check(found: list[tuple[float, Weights, float]], answerable: list[str], off_topic: list[str], keep: float) -> None:
    """Try the best weights and threshold of the files above on held-out files, with and without
    the best-sentence share: does what was chosen on one kind of question carry to another?"""
    good = _answerable(answerable)
    bad = _load(off_topic)
    print(f"held out: {len(good)} answerable questions found in the top 5, {len(bad)} off-topic questions")
    for label, pool in (("best", found), ("best without the sentence share", [f for f in found if f[1][2] == 0])):
        _, weights, cut = max(pool)
        weighted = _weighted(weights)
        ans = sorted(_confidence(r, weighted) for r in good)
        off = [_confidence(r, weighted) for r in bad]
        own = _keep_cut(ans, keep)
        print(
            f"{label} {weights}: at the chosen threshold {cut:.3f} kept {_share(ans, cut, False):.3f}"
            f" refused {_share(off, cut, True):.3f}; at the held-out files' own {keep:.0%} kept"
            f" refused {_share(off, own, True):.3f}"
        )


if __name__ == "__main__":
    main()
