"""wait_all polls until every stage is terminal, and fails stages that run too long."""

from __future__ import annotations

from typing import Any

from acgs_operator.pipeline.stages import Stages, State, View, training_view
from acgs_operator.pipeline.watch import wait_all


class Script:
    """A getter that answers a scripted sequence of objects per name (the last one repeats)."""

    def __init__(self, answers: dict[str, list[dict[str, Any] | None]]) -> None:
        self.answers = answers
        self.calls = 0

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        self.calls += 1
        seq = self.answers[name]
        return seq.pop(0) if len(seq) > 1 else seq[0]


class Recorder:
    def __init__(self, stages: Stages) -> None:
        self.stages = stages
        self.views: list[tuple[str, View]] = []

    def update(self, key: str, view: View) -> None:
        self.views.append((key, view))
        self.stages[key].update(view)


def job(phase: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "phase": phase, **status}}


def test_polls_until_every_stage_is_terminal() -> None:
    stages = Stages()
    for key in ("a", "b"):
        stages.add(key, key)
    ok = job("Succeeded", conditions=[{"type": "Compliant", "status": "True"}])
    getter = Script({"ja": [None, job("Running"), ok], "jb": [job("Failed")]})
    board = Recorder(stages)
    last = wait_all(getter, board, kind="TrainingJob", namespace="ns", stages={"a": "ja", "b": "jb"},
                    view=training_view, started=lambda k: stages[k].started, per_stage_timeout=60,
                    overall_timeout=60, interval=0.0)
    assert last == {"a": ok, "b": job("Failed")}
    assert stages["a"].state is State.DONE and stages["b"].state is State.FAILED
    assert [v.state for k, v in board.views if k == "a"] == [State.PENDING, State.RUNNING, State.DONE]


def test_a_stage_that_runs_too_long_fails_as_timed_out() -> None:
    stages = Stages()
    stages.add("a", "a")
    board = Recorder(stages)
    last = wait_all(Script({"ja": [job("Running")]}), board, kind="TrainingJob", namespace="ns", stages={"a": "ja"},
                    view=training_view, started=lambda k: -1e9, per_stage_timeout=5, overall_timeout=60,
                    interval=0.0)
    assert stages["a"].state is State.FAILED and "timed out after 5s" in stages["a"].detail
    assert last["a"] == job("Running")
