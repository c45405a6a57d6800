"""Rewrite a principle module (rules over one ``input`` decision) into functions of a decision argument.

rego-cpp crashes on ``with input as ...`` combined with comparisons, so the batched evaluator cannot
re-bind ``input`` per decision. Instead each rule that reads ``input`` becomes a function of
``acgs_input_``; the module then answers for any number of decisions in one engine query.

Supported top-level statements: ``violation contains TERM if {BODY}`` / ``... if EXPR``, helper rules
``NAME if {BODY}``, ``NAME := VALUE if {BODY}``, ``NAME := EXPR`` (these become functions when they read
``input``), and anything that does not read ``input`` (kept as is). Other forms return None and the
evaluator falls back to one query per decision for that principle.
"""

from __future__ import annotations

import re

ARG = "acgs_input_"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VIOLATION_BRACE = re.compile(r"^violation\s+contains\s+(?P<term>.+?)\s+if\s*\{(?P<body>.*)\}\s*$", re.DOTALL)
_VIOLATION_EXPR = re.compile(r"^violation\s+contains\s+(?P<term>.+?)\s+if\s+(?P<body>[^{].*)$", re.DOTALL)
_HELPER_BOOL = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s+if\s*\{(?P<body>.*)\}\s*$", re.DOTALL)
_HELPER_BOOL_EXPR = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s+if\s+(?P<body>[^{].*)$", re.DOTALL)
_HELPER_VALUE_IF = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*:=\s*(?P<value>.+?)\s+if\s*\{(?P<body>.*)\}\s*$", re.DOTALL)
_HELPER_VALUE = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s*:=\s*(?P<value>.+)$", re.DOTALL)


def _code_spans(source: str) -> list[tuple[int, int, bool]]:
    """Split ``source`` into (start, end, is_code) spans; strings and comments are not code."""
    spans: list[tuple[int, int, bool]] = []
    i, start, n = 0, 0, len(source)
    while i < n:
        ch = source[i]
        if ch in "\"`#":
            if i > start:
                spans.append((start, i, True))
            j = i + 1
            if ch == "#":
                while j < n and source[j] != "\n":
                    j += 1
            elif ch == "`":
                while j < n and source[j] != "`":
                    j += 1
                j += 1
            else:
                while j < n and source[j] != '"':
                    j += 2 if source[j] == "\\" else 1
                j += 1
            spans.append((i, min(j, n), False))
            i = start = min(j, n)
        else:
            i += 1
    if start < n:
        spans.append((start, n, True))
    return spans


def _replace_idents(source: str, names: dict[str, str]) -> str:
    """Replace whole identifiers in code (not strings/comments, not after a dot) by ``names[ident]``."""
    out: list[str] = []
    for start, end, is_code in _code_spans(source):
        text = source[start:end]
        if not is_code:
            out.append(text)
            continue

        def swap(match: re.Match[str], text: str = text) -> str:
            before = text[: match.start()].rstrip()
            if before.endswith("."):
                return match.group(0)
            return names.get(match.group(0), match.group(0))

        out.append(_IDENT.sub(swap, text))
    return "".join(out)


def _mentions(source: str, ident: str) -> bool:
    return any(re.search(rf"(?<![.\w]){ident}\b", source[s:e]) for s, e, code in _code_spans(source) if code)


def calls(source: str, function: str) -> bool:
    """Whether the code of ``source`` (not its strings or comments) calls the built-in ``function``."""
    pattern = re.compile(rf"(?<![.\w]){re.escape(function)}\s*\(")
    return any(pattern.search(source[s:e]) for s, e, code in _code_spans(source) if code)


def statements(source: str) -> list[str]:
    """Top-level statements: a statement starts on a line beginning in column 0 outside any bracket."""
    depth = 0
    current: list[str] = []
    result: list[str] = []
    for line in source.splitlines():
        starts_new = depth == 0 and line[:1] not in ("", " ", "\t", "}", "]", ")", "#")
        if starts_new and current:
            result.append("\n".join(current).strip())
            current = []
        if line.strip() or current:
            current.append(line)
        code = "".join(line[s:e] for s, e, is_code in _code_spans(line) if is_code)
        depth += sum(code.count(c) for c in "{[(") - sum(code.count(c) for c in "}])")
    if current:
        result.append("\n".join(current).strip())
    return [s for s in result if s and not s.startswith("#")]


def _helper(stmt: str) -> re.Match[str] | None:
    return (
        _HELPER_VALUE_IF.match(stmt) or _HELPER_BOOL.match(stmt) or _HELPER_BOOL_EXPR.match(stmt)
        or _HELPER_VALUE.match(stmt)
    )


def batch_module(rego: str, package: str) -> str | None:
    """``rego`` rewritten under ``package``: ``violations(acgs_input_)`` is the union of its violation rules."""
    stmts = statements(rego)
    helpers: dict[str, str] = {}
    # helper rules that read input (directly or through other helpers) become functions
    changed = True
    while changed:
        changed = False
        for stmt in stmts:
            match = _helper(stmt)
            if match is None or match.group("name") in helpers or stmt.startswith(("violation", "default")):
                continue
            if _mentions(stmt, "input") or any(_mentions(stmt, h) for h in helpers):
                helpers[match.group("name")] = f"{match.group('name')}({ARG})"
                changed = True
    names = {"input": ARG, **helpers}
    out = [f"package {package}", ""]
    rules: list[str] = []
    for stmt in stmts:
        if stmt.startswith("package "):
            continue
        if stmt.startswith("import "):
            if "input" in stmt:
                return None
            out.append(stmt)
            continue
        if stmt.startswith("violation"):
            match = _VIOLATION_BRACE.match(stmt) or _VIOLATION_EXPR.match(stmt)
            if match is None:
                return None
            name = f"acgs_rule_{len(rules)}"
            term = _replace_idents(match.group("term"), names)
            body = _replace_idents(match.group("body"), names)
            out.append(f"{name}({ARG}) := {{{term} |\n{body}\n}}")
            rules.append(name)
            continue
        helper = _helper(stmt)
        if helper is not None and helper.group("name") in helpers:
            match = helper
            head = f"{match.group('name')}({ARG})"
            helper_body = _replace_idents(match.group("body"), names) if "body" in match.groupdict() else None
            if "value" in match.groupdict():
                value = _replace_idents(match.group("value"), names)
                out.append(
                    f"{head} := {value} if {{\n{helper_body}\n}}" if helper_body is not None else f"{head} := {value}"
                )
            else:
                out.append(f"{head} if {{\n{helper_body}\n}}")
            continue
        if _mentions(stmt, "input") or any(_mentions(stmt, h) for h in helpers):
            return None
        out.append(stmt)
    if not rules:
        return None
    union = " | ".join(f"{r}({ARG})" for r in rules)
    out.append(f"violations({ARG}) := {union}")
    return "\n\n".join(out) + "\n"
