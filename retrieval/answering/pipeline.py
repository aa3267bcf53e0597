"""Answering as a pipeline of stages over one ``AnswerState``.

A stage has a ``name`` and a ``run(state)`` that reads what earlier stages left in the state and
adds its own part; a stage may end the answer (``state.stop``) and the ones after it do not run.
Evaluating part of the pipeline is a wiring change: ``pipeline.up_to("rerank")`` is the ranking
``eval`` scores, ``pipeline.without("abstention")`` answers whatever the confidence, and a new
stage (the reader) goes in with ``inserted_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from retrieval.answering.abstention import Abstention
from retrieval.answering.candidates import Candidates, Recency
from retrieval.answering.collapse import Collapse
from retrieval.answering.marking import Marking, Quotes
from retrieval.answering.rerank import Rerank
from retrieval.answering.state import AnswerState

__all__ = ["STAGES", "Pipeline", "Stage", "default_pipeline"]


class Stage(Protocol):
    """One step of answering."""

    name: str

    def run(self, state: AnswerState) -> None:
        """Read the state, add this stage's part (or ``state.stop`` the answer)."""
        ...


@dataclass(frozen=True)
class Pipeline:
    """Stages run in order until one ends the answer."""

    stages: tuple[Stage, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Return the stages' names, in order."""
        return tuple(s.name for s in self.stages)

    def run(self, state: AnswerState) -> AnswerState:
        """Run the stages over ``state`` and return it."""
        for stage in self.stages:
            if state.done:
                break
            stage.run(state)
        return state

    def _index(self, name: str) -> int:
        if name not in self.names:
            raise ValueError(f"no stage {name!r} in {self.names}")
        return self.names.index(name)

    def up_to(self, name: str) -> Pipeline:
        """Return the pipeline that stops after stage ``name``."""
        return Pipeline(self.stages[: self._index(name) + 1])

    def without(self, *names: str) -> Pipeline:
        """Return the pipeline with these stages switched off."""
        for name in names:
            self._index(name)
        return Pipeline(tuple(s for s in self.stages if s.name not in names))

    def inserted_after(self, name: str, stage: Stage) -> Pipeline:
        """Return the pipeline with ``stage`` run right after stage ``name``."""
        at = self._index(name) + 1
        return Pipeline((*self.stages[:at], stage, *self.stages[at:]))

    def replaced(self, stage: Stage) -> Pipeline:
        """Return the pipeline with the stage of the same name replaced by ``stage``."""
        at = self._index(stage.name)
        return Pipeline((*self.stages[:at], stage, *self.stages[at + 1 :]))


# The default stages, in order. Abstention runs as early as its signals allow (on the fused
# candidates), so a question the articles do not answer costs no sentence scoring.
STAGES: tuple[Stage, ...] = (
    Candidates(),
    Recency(),
    Abstention(),
    Collapse(),
    Rerank(),
    Marking(),
    Quotes(),
)


def default_pipeline() -> Pipeline:
    """Return the shipped pipeline: candidates, recency, abstention, collapse, rerank, marking, quotes."""
    return Pipeline(STAGES)
