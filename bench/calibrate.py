"""Choose the abstention threshold from `newsqa eval --details` files.

    python bench/calibrate.py --answerable A.jsonl [A2.jsonl ...] --off-topic O.jsonl [O2.jsonl ...]

Answerable files come from questions asked of the articles that answer them, off-topic files from
questions asked of unrelated articles. For each coverage weight the script finds the lowest
threshold that refuses at least --refuse of the off-topic questions and reports how many of the
answerable questions found in the top 5 are still answered.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _load(paths: list[str]) -> list[dict[str, object]]:
    rows = []
    for path in paths:
        for line in Path(path).read_text().splitlines():
            row = json.loads(line)
            # Only the shipped method answers users; the baselines' rows rank differently.
            if "confidence_parts" in row and str(row.get("method", "")).endswith("(shipped)"):
                rows.append(row)
    return rows


def _confidence(row: dict[str, object], weight: float) -> float:
    parts = row["confidence_parts"]
    assert isinstance(parts, list)
    return max((d + weight * c for d, c in parts), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--answerable", nargs="+", required=True)
    parser.add_argument("--off-topic", nargs="+", required=True)
    parser.add_argument("--refuse", type=float, default=0.90)
    parser.add_argument("--curve", type=float, default=None, help="print the trade-off for this coverage weight")
    args = parser.parse_args()
    good = [r for r in _load(args.answerable) if isinstance(r.get("rank"), int) and int(r["rank"]) <= 5]  # type: ignore[arg-type]
    bad = _load(args.off_topic)
    print(f"{len(good)} answerable questions found in the top 5, {len(bad)} off-topic questions")
    if args.curve is not None:
        print(f"{'threshold':>9} {'refused':>8} {'kept@5':>7}")
        for step in range(20, 90, 4):
            cut = step / 100
            refused = sum(_confidence(r, args.curve) < cut for r in bad) / len(bad)
            kept = sum(_confidence(r, args.curve) >= cut for r in good) / len(good)
            print(f"{cut:>9.2f} {refused:>8.3f} {kept:>7.3f}")
        return
    print(f"{'coverage_w':>10} {'threshold':>9} {'refused':>8} {'kept@5':>7}")
    for weight in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7):
        off = sorted(_confidence(r, weight) for r in bad)
        # The smallest threshold above the required share of off-topic confidences.
        cut = off[min(len(off) - 1, int(args.refuse * len(off)))] + 1e-6
        refused = sum(c < cut for c in off) / len(off)
        kept = sum(_confidence(r, weight) >= cut for r in good) / len(good)
        print(f"{weight:>10} {cut:>9.3f} {refused:>8.3f} {kept:>7.3f}")


if __name__ == "__main__":
    main()
