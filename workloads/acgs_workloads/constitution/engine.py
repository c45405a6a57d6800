"""Thin, typed access to the real Rego engine (regopy / rego-cpp) through regopy's public API only
(``Interpreter.add_module``, ``set_input``, ``query``, ``build`` and ``query_bundle``): quiet module loading,
JSON queries, and :class:`CompiledQuery`, a query compiled once into a bundle.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regopy import Bundle, Interpreter, Output

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


def _first_expression(output: Output, what: str) -> Any:
    """The value of the first expression of ``output`` (None when undefined); RegoEvalError on an engine error."""
    if not output.ok():
        raise RegoEvalError(readable_error(str(output) or f"{what} failed without output"))
    results = output.results
    if not results or not results[0].expressions:
        return None
    return results[0].expressions[0]


def _run(call: Callable[[], Output], what: str) -> Any:
    """Run an engine call that returns an ``Output``.

    regopy reports some runtime errors (e.g. an unknown function) as an ``ok`` output whose text is an error
    tree; ``Output`` then fails to parse it as JSON, and the error tree is the decoder's document.
    """
    from regopy import RegoError

    try:
        output = call()
    except json.JSONDecodeError as error:
        raise RegoEvalError(readable_error(error.doc)) from error
    except RegoError as error:
        raise RegoEvalError(readable_error(str(error))) from error
    return _first_expression(output, what)


def query_json(interpreter: Interpreter, query: str) -> Any:
    """Compile and run ``query`` against the interpreter's modules; the value of its first expression
    (None when undefined)."""
    return _run(lambda: interpreter.query(query), f"query {query!r}")


def set_input(interpreter: Interpreter, value: Any) -> None:
    """Set the ``input`` document (JSON-encodable)."""
    from regopy import RegoError

    try:
        interpreter.set_input(value)
    except RegoError as error:
        raise RegoEvalError(readable_error(str(error))) from error


class CompiledQuery:
    """``query`` over ``modules`` compiled once into a regopy ``Bundle``; each :meth:`run` only evaluates.

    Not thread-safe (the runner interpreter holds the input between ``set_input`` and the query): callers
    serialise :meth:`run`.
    """

    def __init__(self, modules: dict[str, str], query: str) -> None:
        from regopy import RegoError

        self.query = query
        self._builder = new_interpreter(modules)  # the bundle refers to the builder's state: keep it alive
        try:
            with quiet_stdout():
                self._bundle: Bundle = self._builder.build(query)
        except RegoError as error:
            raise RegoEvalError(readable_error(str(error))) from error
        if not self._bundle.ok():
            raise RegoEvalError(f"query {query!r} does not build into a bundle")
        from regopy import Interpreter

        self._runner = Interpreter()

    def run(self, value: Any) -> Any:
        """Evaluate the compiled query with ``input`` = ``value``: the value of its first expression."""
        set_input(self._runner, value)
        return _run(lambda: self._runner.query_bundle(self._bundle), f"bundle query {self.query!r}")
