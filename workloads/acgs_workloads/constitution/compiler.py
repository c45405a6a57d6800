"""Compile-checking principles in the real Rego engine (torch-free; the operator imports ``compile_errors``)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from acgs_workloads.constitution.engine import RegoEvalError, new_interpreter, query_json, set_input
from acgs_workloads.constitution.hashing import as_principles
from acgs_workloads.constitution.rewrite import calls
from acgs_workloads.contract import Principle

_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$", re.MULTILINE)


def package_of(rego: str) -> str | None:
    """The dotted package path a module declares (``acgs.privacy``), or None."""
    match = _PACKAGE.search(rego)
    return match.group(1) if match else None


# Built-ins that order numbers, each with a probe and the answer Rego defines for it.
ORDERING_PROBES = {"min": ("min([5, 20])", 5), "max": ("max([5, 20])", 20), "sort": ("sort([20, 5])", [5, 20])}


@lru_cache(maxsize=1)
def misordering_builtins() -> tuple[str, ...]:
    """The ordering built-ins this engine gets wrong on numbers.

    rego-cpp (regopy 1.4-1.5.2) orders the numbers in ``min``, ``max`` and ``sort`` as text, so
    ``min([5, 20])`` is 20; comparison operators (``<``, ``>``) are right. Probed once per process, so the
    check goes away by itself with an engine that gets them right.
    """
    wrong: list[str] = []
    for name, (query, expected) in ORDERING_PROBES.items():
        interpreter = new_interpreter({})
        if query_json(interpreter, query) != expected:
            wrong.append(name)
    return tuple(wrong)


def unreliable_builtin_error(rego: str) -> str | None:
    """Why ``rego`` cannot be trusted on this engine (it calls a misordering built-in), or None."""
    used = [name for name in misordering_builtins() if calls(rego, name)]
    if not used:
        return None
    listed = ", ".join(f"`{name}`" for name in used)
    return (f"module calls {listed}, which this Rego engine (rego-cpp) evaluates wrongly on numbers: it orders "
            f"them as text, so min([5, 20]) is 20; write the comparison with `<` or `>` instead")


def principle_error(principle: Principle) -> str | None:
    """Why ``principle`` is unusable, or None: it must parse, declare a package, define ``violation``
    as a set when evaluated on an empty input, and call no built-in the engine gets wrong."""
    package = package_of(principle.rego)
    if package is None:
        return "module has no `package` declaration (expected e.g. `package acgs.<id>`)"
    unreliable = unreliable_builtin_error(principle.rego)
    if unreliable is not None:
        return unreliable
    try:
        interpreter = new_interpreter({f"{principle.id}.rego": principle.rego})
        set_input(interpreter, {})
        value = query_json(interpreter, f"data.{package}.violation")
    except RegoEvalError as error:
        return str(error)
    if value is None:
        return f"module does not define `violation` (query data.{package}.violation is undefined)"
    if not isinstance(value, list):
        kind = type(value).__name__
        return f"`violation` must be a set of messages (`violation contains msg if {{...}}`), got {kind}"
    return None


def compile_errors(principles: Sequence[Principle] | Sequence[dict[str, Any]]) -> dict[str, str]:
    """Principle id -> the engine's error message, for every principle that does not compile; {} when all do.

    Two principles declaring the same package would merge their rules, so a repeated package is an error too.
    """
    errors: dict[str, str] = {}
    seen: dict[str, str] = {}
    for principle in as_principles(principles):
        error = principle_error(principle)
        package = package_of(principle.rego)
        if error is None and package is not None:
            if package in seen:
                error = f"package {package} is already declared by principle {seen[package]}"
            seen.setdefault(package, principle.id)
        if error is not None:
            errors[principle.id] = error
    return errors
