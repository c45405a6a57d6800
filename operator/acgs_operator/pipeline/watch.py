"""Poll resources until each reaches a terminal stage state, updating the board on every poll."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from acgs_operator.pipeline.stages import State, View

POLL_SECONDS = 1.0


class Getter(Protocol):
    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None: ...


class Display(Protocol):
    def update(self, key: str, view: View) -> None: ...


def wait_all(
    kube: Getter,
    board: Display,
    *,
    kind: str,
    namespace: str,
    stages: Mapping[str, str],
    view: Callable[[dict[str, Any] | None], View],
    started: Callable[[str], float | None],
    per_stage_timeout: float,
    overall_timeout: float,
    stop: threading.Event | None = None,
    interval: float = POLL_SECONDS,
) -> dict[str, dict[str, Any] | None]:
    """Poll every resource in ``stages`` (stage key -> resource name) until all are terminal.

    A stage that has run longer than ``per_stage_timeout`` (counted from when it left pending) or is
    not terminal after ``overall_timeout`` fails as timed out. Returns the last object seen per stage key.
    """
    begin = time.monotonic()
    last: dict[str, dict[str, Any] | None] = {}
    pending = dict(stages)
    while pending:
        if stop is not None and stop.is_set():
            for key in pending:
                board.update(key, View(State.FAILED, "interrupted"))
            break
        now = time.monotonic()
        for key, name in list(pending.items()):
            obj = kube.get(kind, name, namespace)
            last[key] = obj
            current = view(obj)
            since = started(key)
            ran = now - since if since is not None else 0.0
            if not current.state.terminal and (ran > per_stage_timeout or now - begin > overall_timeout):
                limit = per_stage_timeout if ran > per_stage_timeout else overall_timeout
                current = View(State.FAILED, f"timed out after {limit:.0f}s ({current.detail})", current.percent)
            board.update(key, current)
            if current.state.terminal:
                del pending[key]
        if pending:
            if stop is not None:
                stop.wait(interval)
            else:
                time.sleep(interval)
    return last
