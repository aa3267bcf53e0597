"""`newsqa eval`: the figures it prints, --compare, --off-topic, --details, and bad question files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.answering.abstention import combine_confidence
from retrieval.config import SearchConfig

from .conftest import SAMPLE
from .test_answers import OFF_TOPIC, SAMPLE_QUESTIONS
from .test_cli import DataDir, run

FIGURES = {
    "method",
    "questions",
    "recall@1",
    "recall@5",
    "recall@10",
    "mrr@10",
    "marked",
    "abstained",
    "answered_when_found",
    "latency_ms_p50",
    "latency_ms_p95",
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[DataDir, Path, Path]:
    """Return a data dir holding the sample articles, its questions file and an off-topic one."""
    root = tmp_path_factory.mktemp("eval")
    folder = DataDir.on(root / "data", None)
    assert run("--data-dir", folder, "ingest", str(SAMPLE))[0] == 0
    answerable = root / "questions.jsonl"
    answerable.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": q, "answers": [fact], "article_urls": []}) + "\n"
            for i, (q, fact) in enumerate(SAMPLE_QUESTIONS)
        )
    )
    off_topic = root / "off.jsonl"
    off_topic.write_text("".join(json.dumps({"question": q, "answers": []}) + "\n" for q in OFF_TOPIC))
    return folder, answerable, off_topic


def _results(*args: str) -> list[dict[str, object]]:
    code, out, err = run(*args)
    assert code == 0, err
    results = json.loads(out)["results"]
    assert isinstance(results, list)
    return results


def test_eval_scores_the_shipped_method(sample: tuple[DataDir, Path, Path]) -> None:
    folder, questions, _ = sample
    [shipped] = _results("--data-dir", folder, "eval", "--json", str(questions))
    assert set(shipped) == FIGURES
    assert shipped["method"] == "weighted (shipped)" and shipped["questions"] == len(SAMPLE_QUESTIONS)
    r1, r5, r10 = (float(shipped[f"recall@{k}"]) for k in (1, 5, 10))  # type: ignore[arg-type]
    assert 0.9 <= r1 <= r5 <= r10 <= 1.0  # the first quote holds the fact for 18 of 20 or more
    assert r1 <= float(shipped["mrr@10"]) <= 1.0  # type: ignore[arg-type]
    assert float(shipped["marked"]) >= 0.8  # type: ignore[arg-type]
    assert shipped["abstained"] == 0.0 and shipped["answered_when_found"] == 1.0
    assert 0 < float(shipped["latency_ms_p50"]) <= float(shipped["latency_ms_p95"])  # type: ignore[arg-type]


def test_compare_puts_both_baselines_beside_the_shipped_method(sample: tuple[DataDir, Path, Path]) -> None:
    folder, questions, _ = sample
    results = _results("--data-dir", folder, "eval", "--json", "--compare", "--limit", "6", str(questions))
    assert [r["method"] for r in results] == ["dense", "lexical", "weighted (shipped)"]
    assert all(r["questions"] == 6 for r in results)
    # Baselines are rankings only: no answers, so no marking or abstention figures.
    assert all(r["marked"] is None and r["abstained"] is None for r in results[:2])
    assert results[2]["marked"] is not None

    code, out, _ = run("--data-dir", folder, "eval", "--compare", "--limit", "6", str(questions))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["method", "n", "R@1"] and len(lines) == 4


def test_off_topic_questions_are_counted_as_refused(sample: tuple[DataDir, Path, Path]) -> None:
    folder, _, off_topic = sample
    [shipped] = _results("--data-dir", folder, "eval", "--json", "--off-topic", str(off_topic))
    assert shipped["questions"] == len(OFF_TOPIC)
    assert shipped["abstained"] == 1.0
    code, out, _ = run("--data-dir", folder, "eval", "--off-topic", str(off_topic))
    assert code == 0 and out.split()[:3] == ["method", "questions", "refused"]


def test_details_recompute_the_answers_own_decision(sample: tuple[DataDir, Path, Path], tmp_path: Path) -> None:
    """What --details records is what the answer decided from: calibrating on it is sound."""
    folder, questions, off_topic = sample
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(questions.read_text() + off_topic.read_text())
    details = tmp_path / "details.jsonl"
    assert run("--data-dir", folder, "eval", "--details", str(details), str(mixed))[0] == 0
    rows = [json.loads(line) for line in details.read_text().splitlines()]
    assert len(rows) == len(SAMPLE_QUESTIONS) + len(OFF_TOPIC)
    config = SearchConfig()
    decided = {True: 0, False: 0}
    for row in rows:
        assert all(len(p) == 4 for p in row["confidence_parts"])
        score = combine_confidence(row["confidence_parts"], row["contrast"], config)
        assert (score >= config.min_score) == row["answered"], row
        decided[row["answered"]] += 1
    assert decided == {True: len(SAMPLE_QUESTIONS), False: len(OFF_TOPIC)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "How big is Vella?", "answers": ["2.7"]}\n{broken\n', "q.jsonl:2: not a question line"),
        ('{"answers": ["2.7"]}\n', "q.jsonl:1: not a question line"),
        ("\n\n", "q.jsonl: no questions"),
    ],
)
def test_a_bad_questions_file_is_a_one_line_error(
    sample: tuple[DataDir, Path, Path], tmp_path: Path, content: str, message: str
) -> None:
    folder, _, _ = sample
    bad = tmp_path / "q.jsonl"
    bad.write_text(content)
    code, out, err = run("--data-dir", folder, "eval", str(bad))
    assert code != 0 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1
