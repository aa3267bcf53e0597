"""The PostgreSQL backend's questions log and feedback on answers."""

from __future__ import annotations

from collections.abc import Sequence

from retrieval.storage.base import UsageStats
from retrieval.storage.pg.store import PgStore

__all__ = ["PgQuestionLog"]


class PgQuestionLog:
    """Questions asked, what answered them, and the thumbs up or down they got."""

    def __init__(self, store: PgStore) -> None:
        self.store = store

    def log_question(
        self,
        question: str,
        channel: str,
        chat_id: int | None,
        user_id: int | None,
        answered: bool,
        passage_ids: Sequence[int],
    ) -> int:
        """Record a question; return its id."""
        with self.store.db.connection() as con:
            row = con.execute(
                "INSERT INTO questions (question, channel, chat_id, user_id, answered, passage_ids)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (question, channel, chat_id, user_id, answered, [int(p) for p in passage_ids]),
            ).fetchone()
        return int(row[0])

    def get_question(self, question_id: int) -> str | None:
        """Return a recorded question's text."""
        rows = self.store._rows("SELECT question FROM questions WHERE id = %s", (question_id,), read_only=False)
        return None if not rows else str(rows[0]["question"])

    def record_feedback(
        self, question_id: int, value: int, chat_id: int | None, user_id: int | None, passage_ids: Sequence[int]
    ) -> None:
        """Record a thumbs up (+1) or down (-1) for an answer."""
        if value not in (1, -1):
            raise ValueError("feedback is +1 or -1")
        with self.store.db.connection() as con:
            con.execute(
                "INSERT INTO feedback (question_id, value, chat_id, user_id, passage_ids) VALUES (%s, %s, %s, %s, %s)",
                (question_id, value, chat_id, user_id, [int(p) for p in passage_ids]),
            )

    def usage(self) -> UsageStats:
        """Return question and feedback counts."""
        rows = self.store._rows(
            "SELECT (SELECT count(*) FROM questions) AS q,"
            " (SELECT count(*) FROM questions WHERE NOT answered) AS nf,"
            " (SELECT count(*) FROM feedback WHERE value = 1) AS up,"
            " (SELECT count(*) FROM feedback WHERE value = -1) AS down",
            read_only=False,
        )
        r = rows[0]
        return UsageStats(int(r["q"]), int(r["nf"]), int(r["up"]), int(r["down"]))
