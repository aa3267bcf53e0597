"""The local backend's questions log and feedback on answers, in the SQLite store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone

from retrieval.storage.base import UsageStats
from retrieval.storage.local.store import Store

__all__ = ["QuestionLog"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class QuestionLog:
    """Questions asked, what answered them, and the thumbs up or down they got."""

    def __init__(self, store: Store) -> None:
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
        with self.store.write_lock, self.store.connection() as con:
            cur = con.execute(
                "INSERT INTO questions (asked_at, question, channel, chat_id, user_id, answered, passage_ids)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (_now(), question, channel, chat_id, user_id, int(answered), json.dumps(list(passage_ids))),
            )
            return int(cur.lastrowid or 0)

    def get_question(self, question_id: int) -> str | None:
        """Return a recorded question's text."""
        with self.store.connection() as con:
            row = con.execute("SELECT question FROM questions WHERE id = ?", (question_id,)).fetchone()
        return None if row is None else str(row["question"])

    def record_feedback(
        self, question_id: int, value: int, chat_id: int | None, user_id: int | None, passage_ids: Sequence[int]
    ) -> None:
        """Record a thumbs up (+1) or down (-1) for an answer."""
        if value not in (1, -1):
            raise ValueError("feedback is +1 or -1")
        with self.store.write_lock, self.store.connection() as con:
            con.execute(
                "INSERT INTO feedback (question_id, value, chat_id, user_id, passage_ids, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (question_id, value, chat_id, user_id, json.dumps(list(passage_ids)), _now()),
            )

    def usage(self) -> UsageStats:
        """Return question and feedback counts."""
        with self.store.connection() as con:
            q = con.execute("SELECT COUNT(*), COALESCE(SUM(1 - answered), 0) FROM questions").fetchone()
            f = con.execute("SELECT COALESCE(SUM(value = 1), 0), COALESCE(SUM(value = -1), 0) FROM feedback").fetchone()
        return UsageStats(int(q[0]), int(q[1]), int(f[0]), int(f[1]))
