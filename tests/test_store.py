"""Store and indexes: re-ingest, update, copies, removal, model mismatch, check and repair."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from retrieval.config import Config, ModelConfig
from retrieval.errors import EmptyIndexError, ModelMismatchError, NotFoundError, StoreError
from retrieval.ingest.loaders import make_article
from retrieval.models.encoder import Encoder
from retrieval.newsindex import NewsIndex
from retrieval.storage.local.indexes import FAISS_NAME, LocalIndexes
from retrieval.storage.local.store import Store

STORY = (
    "The harbour authority of Lindqvist Bay approved a new ferry terminal on Tuesday. "
    "The terminal will cost 48 million crowns and open in the spring of 2027.\n\n"
    "Ferry operators said the old pier could no longer take the larger vessels now in service. "
    "Local fishermen asked for a separate quay so that their boats are not crowded out."
)


def test_ingesting_the_same_article_twice_changes_nothing(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    article = make_article(STORY, url="https://example.org/ferry")
    first = index.ingest([article])
    gen = index.backend.get_meta("generation")
    again = index.ingest([make_article(STORY, url="https://example.org/ferry?utm_source=x")])
    assert (first.added, again.added, again.skipped) == (1, 0, 1)
    assert index.backend.get_meta("generation") == gen
    assert index.stats().passages == first.passages


def test_changed_text_under_the_same_url_replaces_the_passages(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    index.ingest([make_article(STORY, url="https://example.org/ferry")])
    revised = STORY.replace("48 million crowns", "52 million crowns")
    report = index.ingest([make_article(revised, url="https://example.org/ferry")])
    assert report.updated == 1
    answer = index.ask("How much will the ferry terminal cost?")
    assert answer.answered
    assert "52 million" in answer.quotes[0].text
    assert all("48 million" not in q.text for q in answer.quotes)
    assert index.check().ok


def test_an_exact_copy_under_another_url_is_listed_as_also_in(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    a = dataclasses.replace(make_article(STORY, url="https://example.org/ferry"), source="Example Gazette")
    b = dataclasses.replace(make_article(STORY, url="https://example.net/wire/ferry"), source="Sample Wire")
    report = index.ingest([a, b])
    assert (report.added, report.duplicates) == (1, 1)
    answer = index.ask("How much will the ferry terminal cost?")
    top = answer.quotes[0]
    assert top.article.id == a.id
    assert [x.source for x in top.also_in] == ["Sample Wire"]
    assert len({q.article.id for q in answer.quotes}) == 1


def test_a_lightly_edited_copy_collapses_into_one_quote(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    a = dataclasses.replace(make_article(STORY, url="https://example.org/ferry"), source="Example Gazette")
    edited = STORY.replace("on Tuesday", "on Tuesday evening").replace("Local fishermen", "Fishermen")
    b = dataclasses.replace(make_article(edited, url="https://example.com/ferry-update"), source="Demo Herald")
    index.ingest([a, b])
    answer = index.ask("How much will the ferry terminal cost?", k=3)
    ids = [q.article.id for q in answer.quotes]
    assert len(ids) == len(set(ids)) == 1 or ids.count(ids[0]) == 1
    lead = answer.quotes[0]
    assert {x.source for x in lead.also_in} == ({"Demo Herald"} if lead.article.id == a.id else {"Example Gazette"})


def test_removing_an_article_takes_it_out_of_answers(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    article = make_article(STORY, url="https://example.org/ferry")
    index.ingest([article])
    gone = index.remove("https://example.org/ferry")
    assert gone.id == article.id
    assert index.stats().passages == 0
    assert index.ask("How much will the ferry terminal cost?").answered is False
    assert index.check().ok
    with pytest.raises(NotFoundError):
        index.remove(article.id)


def test_removing_the_original_hands_its_passages_to_the_copy(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    a = make_article(STORY, url="https://example.org/ferry")
    b = make_article(STORY, url="https://example.net/ferry")
    index.ingest([a, b])
    index.remove(a.id)
    answer = index.ask("How much will the ferry terminal cost?")
    assert answer.quotes[0].article.id == b.id
    assert index.check().ok


def test_an_index_built_with_another_model_is_refused(
    make_index: Callable[..., NewsIndex], make_config: Callable[..., Config]
) -> None:
    index = make_index()
    index.ingest([make_article(STORY, url="https://example.org/ferry")])
    other = dataclasses.replace(make_config(), model=ModelConfig(name="some/other-model"))
    with pytest.raises(ModelMismatchError, match="other-model"):
        NewsIndex.open(other)


def test_asking_an_empty_data_dir_says_to_ingest_first(make_config: Callable[..., Config]) -> None:
    with pytest.raises(EmptyIndexError, match="newsqa ingest"):
        NewsIndex.open(make_config("nothing-here"))


@pytest.mark.local_only
def test_check_finds_a_stale_index_and_repair_fixes_it(make_index: Callable[..., NewsIndex]) -> None:
    index = make_index()
    index.ingest([make_article(STORY, url="https://example.org/ferry")])
    stamp = index.backend.folder / FAISS_NAME.replace(".faiss", ".json")
    data = json.loads(stamp.read_text())
    data["generation"] -= 1
    stamp.write_text(json.dumps(data))
    report = index.check()
    assert not report.ok and any("vector index" in p for p in report.problems)
    repaired = index.check(repair=True)
    assert repaired.ok and repaired.repaired
    assert index.check().ok


def test_another_process_s_writes_are_seen_after_refresh(
    make_index: Callable[..., NewsIndex], make_config: Callable[..., Config], encoder: object
) -> None:
    writer = make_index()
    writer.ingest([make_article(STORY, url="https://example.org/ferry")])
    reader = NewsIndex.open(make_config(), encoder=encoder)  # type: ignore[arg-type]
    assert reader.ask("ferry terminal cost").answered
    writer.ingest(
        [
            make_article(
                "Volcanologists recorded 212 small earthquakes under Mount Orrin overnight.",
                url="https://example.org/orrin",
            )
        ]
    )
    assert reader.refresh() is True
    assert (
        reader.ask("How many earthquakes were recorded under Mount Orrin?").quotes[0].article.url
        == "https://example.org/orrin"
    )


@pytest.mark.local_only
def test_a_reader_keeps_its_snapshot_while_another_writer_is_between_batches(
    make_index: Callable[..., NewsIndex],
    make_config: Callable[..., Config],
    encoder: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from retrieval.storage.local.locking import writer_lock

    writer = make_index()
    writer.ingest([make_article(STORY, url="https://example.org/ferry")])
    reader = NewsIndex.open(make_config(), encoder=encoder)  # type: ignore[arg-type]
    assert reader.ask("ferry terminal cost").answered
    rebuilds: list[int] = []
    original = LocalIndexes.rebuild

    def counting(self: LocalIndexes, gen: int) -> object:
        rebuilds.append(gen)
        return original(self, gen)

    monkeypatch.setattr(LocalIndexes, "rebuild", counting)
    with writer_lock(writer.backend.folder):
        with writer.backend.store.transaction():
            pass  # a committed batch whose index files are not written yet
        for _ in range(3):
            assert reader.ask("ferry terminal cost").answered
        assert reader.refresh() is False
        assert rebuilds == []
    # The writer is gone and never wrote its files: the reader rebuilds once and moves on.
    assert reader.refresh() is True
    assert len(rebuilds) == 1


def test_two_texts_under_one_url_in_one_input_keep_the_first_and_a_rerun_changes_nothing(
    make_index: Callable[..., NewsIndex],
) -> None:
    index = make_index()
    first = make_article(STORY, url="https://example.org/ferry")
    second = make_article(STORY.replace("48 million", "49 million"), url="https://example.org/ferry")
    report = index.ingest([first, second])
    assert (report.added, report.repeated) == (1, 1)
    gen = index.backend.get_meta("generation")
    again = index.ingest([first, second])
    assert (again.added, again.updated, again.skipped) == (0, 0, 2)
    assert index.backend.get_meta("generation") == gen
    assert "48 million" in index.get("https://example.org/ferry").text


def test_bm25_indexes_the_passage_without_the_title_and_an_older_index_is_rebuilt_alone(
    make_index: Callable[..., NewsIndex], encoder: Encoder
) -> None:
    index = make_index()
    if index.config.storage.backend != "local":
        pytest.skip("files of the local backend")
    index.ingest([make_article(STORY, url="https://example.org/ferry", title="Zanzibarian quayside dispute")])
    lexical = index.backend.retriever().lexical
    assert len(lexical.search("Zanzibarian quayside", 5)[0]) == 0  # title words are not in BM25
    assert len(lexical.search("ferry terminal", 5)[0]) > 0
    # A data dir written before (BM25 without the "text" mark): a reader rebuilds BM25 alone and
    # keeps it, and leaves the vector index as it was.
    pointer = index.backend.folder / "lexical.json"
    stamp = json.loads(pointer.read_text())
    del stamp["text"]
    pointer.write_text(json.dumps(stamp))
    faiss_file = index.backend.folder / FAISS_NAME
    before = faiss_file.stat().st_mtime_ns
    reader = NewsIndex.open(index.config, encoder=encoder)
    assert reader.ask("How much will the ferry terminal cost?").quotes
    assert json.loads(pointer.read_text())["text"] == "passage"
    assert faiss_file.stat().st_mtime_ns == before


def test_two_processes_creating_one_store_at_once_both_open_it(tmp_path: Path) -> None:
    # Two replicas started together on an empty data directory: SQLite's switch to WAL does not
    # wait for the other connection's lock, and one of them failed with "database is locked"
    # (about one race in eight here). Threads race the same way, each with its own connection.
    for n in range(50):
        path = tmp_path / f"store-{n}.sqlite3"
        barrier = threading.Barrier(2)
        errors: list[StoreError] = []

        def open_store(
            path: Path = path, barrier: threading.Barrier = barrier, errors: list[StoreError] = errors
        ) -> None:
            barrier.wait()
            try:
                Store(path, create=True).close()
            except StoreError as exc:
                errors.append(exc)

        threads = [threading.Thread(target=open_store) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == [], f"round {n}: {errors[0]}"
