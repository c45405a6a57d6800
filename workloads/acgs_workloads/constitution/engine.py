"""Thin, typed access to the real Rego engine (regopy / rego-cpp): quiet module loading and JSON queries.

regopy is imported lazily, on first use: loading ``librego_shared.so`` before torch makes the later
``import torch`` abort the process ("double free or corruption"), whereas torch first, regopy second works.
Processes that use both (training, serving, tests) should import torch first; importing this module
does not load the engine.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regopy import Interpreter

_FD_LOCK = threading.Lock()
_ERRMSG = re.compile(r"\(errormsg \d+:([^\n]*?)\)\s*$", re.MULTILINE)
_ERRLOC = re.compile(r"\(error \d+:([^|\n]*)\|(\d+)\|(\d+)")


class RegoEvalError(RuntimeError):
    """The engine refused a module or a query; the message is the engine's, made readable."""


@contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence fd 1 while rego-cpp prints its own error report (it writes straight to stdout)."""
    with _FD_LOCK:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)


def _line_col(source: str, offset: int) -> tuple[int, int]:
    before = source[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def readable_error(raw: str, source: str | None = None) -> str:
    """Turn rego-cpp's s-expression error into ``file:line:col: message`` lines."""
    messages = [m.strip() for m in _ERRMSG.findall(raw)]
    locations = _ERRLOC.findall(raw)
    lines: list[str] = []
    for index, message in enumerate(messages):
        if index < len(locations) and source is not None:
            name, offset, _ = locations[index]
            line, col = _line_col(source, int(offset))
            lines.append(f"{name}:{line}:{col}: {message}")
        else:
            lines.append(message)
    return "; ".join(lines) if lines else raw.strip()


def new_interpreter(modules: dict[str, str]) -> Interpreter:
    """An interpreter holding ``modules`` (file name -> source); raises RegoEvalError on a bad module."""
    from regopy import Interpreter, RegoError

    interpreter = Interpreter()
    for name, source in modules.items():
        try:
            with quiet_stdout():
                interpreter.add_module(name, source)
        except RegoError as error:
            raise RegoEvalError(readable_error(str(error), source)) from error
    return interpreter


def query_json(interpreter: Interpreter, query: str) -> Any:
    """Run ``query`` and return the value of its first expression (None when undefined).

    regopy reports some runtime errors (e.g. an unknown function) as an ``ok`` output whose text is an
    error tree, so the raw text is inspected here rather than trusting ``Output.ok()``.
    """
    from regopy.rego_shared import rego_free_output, rego_output_string, rego_query

    impl = rego_query(interpreter._impl, query)
    try:
        text = rego_output_string(impl)
    finally:
        rego_free_output(impl)
    if text is None:
        raise RegoEvalError(f"query {query!r} failed without output")
    text = text.strip()
    if text == "undefined" or not text:
        return None
    if text.startswith("("):
        raise RegoEvalError(readable_error(text))
    try:
        output = json.loads(text)
    except json.JSONDecodeError as error:
        raise RegoEvalError(text) from error
    first = output[0] if isinstance(output, list) else output
    expressions = first.get("expressions", []) if isinstance(first, dict) else []
    return expressions[0] if expressions else None


def set_input(interpreter: Interpreter, value: Any) -> None:
    """Set the ``input`` document (JSON-encodable)."""
    from regopy import RegoError

    try:
        interpreter.set_input(value)
    except RegoError as error:
        raise RegoEvalError(readable_error(str(error))) from error
