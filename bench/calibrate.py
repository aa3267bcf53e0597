"""Choose the abstention threshold (and weights) from `newsqa eval --details` files.

    python bench/calibrate.py --answerable A.jsonl [A2.jsonl ...] --off-topic O.jsonl [O2.jsonl ...]

Answerable files come from questions asked of the articles that answer them, off-topic files from
questions asked of unrelated articles. The confidence is recomputed from each question's parts
(per top passage: cosine, term coverage, share of names; and the contrast of the best passage
with the collection's background) for a grid of weights; for each, the script reports how many
answerable questions found in the top 5 are kept when 90% of the off-topic ones are refused, and
how many off-topic ones are refused when --keep (95%) of the answerable ones are kept. --curve
prints the trade-off of the configured weights threshold by threshold.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from retrieval.answering import CONTRAST_CAP
from retrieval.config import SearchConfig

Weights = tuple[float, float, float]  # coverage, names, contrast


def _load(paths: list[str]) -> list[dict[str, object]]:
    rows = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            # Only the shipped method answers users; the baselines' rows rank differently.
            if "confidence_parts" in row and str(row.get("method", "")).endswith("(shipped)"):
                rows.append(row)
    return rows


def _confidence(row: dict[str, object], weights: Weights) -> float:
    parts = row["confidence_parts"]
    assert isinstance(parts, list)
    cover, names, contrast = weights
    best = max((p[0] + cover * p[1] + names * (p[2] if len(p) > 2 else 1.0) for p in parts), default=0.0)
    seen = row.get("contrast")
    return best + contrast * min(CONTRAST_CAP if seen is None else float(seen), CONTRAST_CAP)  # type: ignore[arg-type]


def _share(values: list[float], cut: float, below: bool) -> float:
    return sum((v < cut) == below for v in values) / max(1, len(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answerable", nargs="+", required=True)
    parser.add_argument("--off-topic", nargs="+", required=True)
    parser.add_argument("--refuse", type=float, default=0.90)
    parser.add_argument("--keep", type=float, default=0.95)
    parser.add_argument("--curve", action="store_true", help="the configured weights' trade-off per threshold")
    args = parser.parse_args()
    good = [r for r in _load(args.answerable) if isinstance(r.get("rank"), int) and int(r["rank"]) <= 5]  # type: ignore[arg-type]
    bad = _load(args.off_topic)
    print(f"{len(good)} answerable questions found in the top 5, {len(bad)} off-topic questions")
    config = SearchConfig()
    if args.curve:
        weights = (config.coverage_weight, config.names_weight, config.contrast_weight)
        kept_all = [_confidence(r, weights) for r in good]
        off_all = [_confidence(r, weights) for r in bad]
        print(f"weights {weights}; {'threshold':>9} {'refused':>8} {'kept@5':>7}")
        for step in range(30, 160, 5):
            cut = step / 100
            print(f"{cut:>9.2f} {_share(off_all, cut, True):>8.3f} {_share(kept_all, cut, False):>7.3f}")
        return
    print(f"{'coverage':>8} {'names':>6} {'contrast':>8} | {'cut@90%':>7} {'kept':>6} | {'cut@95%':>7} {'refused':>7}")
    for weights in itertools.product((0.0, 0.3), (0.0, 0.2), (0.0, 1.0, 2.0, 3.0)):
        off = sorted(_confidence(r, weights) for r in bad)
        ans = sorted(_confidence(r, weights) for r in good)
        # The smallest threshold above the required share of off-topic confidences, and the
        # largest that keeps the required share of answerable ones.
        cut90 = off[min(len(off) - 1, int(args.refuse * len(off)))] + 1e-6
        cut95 = ans[max(0, int((1 - args.keep) * len(ans)))]
        print(
            f"{weights[0]:>8} {weights[1]:>6} {weights[2]:>8} | {cut90:>7.3f} {_share(ans, cut90, False):>6.3f} |"
            f" {cut95:>7.3f} {_share(off, cut95, True):>7.3f}"
        )


if __name__ == "__main__":
    main()
