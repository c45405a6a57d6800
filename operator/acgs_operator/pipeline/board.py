"""The live display: one rich Progress row per stage, plus a log line for every state change."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
)

from acgs_operator.pipeline.stages import Stages, State, View

STYLE = {State.PENDING: "dim", State.RUNNING: "cyan", State.DONE: "green", State.FAILED: "bold red"}


class Board:
    def __init__(self, stages: Stages, console: Console) -> None:
        self.stages = stages
        self.console = console
        self.progress = Progress(
            SpinnerColumn(finished_text="•"),
            TextColumn("{task.description}", style="bold"),
            BarColumn(bar_width=24),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("{task.fields[state]}"),
            TextColumn("{task.fields[seconds]:>7}"),
            TextColumn("{task.fields[detail]}", style="dim", markup=False),
            console=console,
            refresh_per_second=4,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Board:
        self.progress.start()
        for key in self.stages.items:
            self._task(key)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def _task(self, key: str) -> TaskID:
        if key not in self.tasks:
            stage = self.stages[key]
            self.tasks[key] = self.progress.add_task(
                stage.title, total=100, start=False, state=_state(stage.state), detail=stage.detail, seconds=""
            )
        return self.tasks[key]

    def add(self, key: str, title: str) -> None:
        self.stages.add(key, title)
        self._task(key)

    def update(self, key: str, view: View) -> None:
        stage = self.stages[key]
        changed = stage.update(view)
        task = self._task(key)
        if stage.state is not State.PENDING:
            self.progress.start_task(task)
        completed = 100.0 if stage.state is State.DONE else stage.percent or 0.0
        seconds = "" if stage.seconds is None else f"{stage.seconds:.0f}s"
        self.progress.update(task, completed=completed, state=_state(stage.state), detail=_clip(stage.detail),
                             seconds=seconds)
        if stage.state.terminal:
            self.progress.stop_task(task)
        if changed:
            style = STYLE[stage.state]
            seconds = f" after {stage.seconds:.1f}s" if stage.state.terminal and stage.seconds is not None else ""
            line = f"[{style}]{escape(stage.title)}: {stage.state.value}{seconds}[/] {escape(stage.detail)}"
            self.console.print(line, highlight=False, markup=True)

    def log(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False)


def _state(state: State) -> str:
    return f"[{STYLE[state]}]{state.value:<7}[/]"


def _clip(text: str, width: int = 80) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
