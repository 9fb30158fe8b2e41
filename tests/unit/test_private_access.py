"""Seams are public: no module under `src/taskyard` reads another object's `_private` names.

Walks the AST of every module and fails on `x._name` where `x` is not `self`/`cls` (dunder
names are public protocol), and on `from taskyard... import _name`. The few accesses that are
truly needed are allow-listed below with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import taskyard

ROOT = Path(taskyard.__file__).parent

NAMEDTUPLE = "namedtuple's public method (the underscore only keeps it apart from field names)"
SETTINGS_SOURCE = (
    "pydantic-settings calls these hooks on every settings source; the wrapping source must "
    "forward them to the source it wraps"
)
MANAGER_RECORD = "ManagedService is the manager's own record, defined and used only in that module"

#: (module path relative to src/taskyard, attribute) -> why the access is needed.
ALLOWED: dict[tuple[str, str], str] = {
    ("backends/redis/url.py", "_replace"): NAMEDTUPLE,
    ("config/__init__.py", "_replace"): NAMEDTUPLE,
    ("config/sources.py", "_set_current_state"): SETTINGS_SOURCE,
    ("config/sources.py", "_set_settings_sources_data"): SETTINGS_SOURCE,
    ("http/api/errors.py", "_body"): (
        "Starlette's request-body cache: the body read here under the size limit is the one "
        "the handler reads (Starlette has no public setter)"
    ),
    ("http/api/errors.py", "_json"): (
        "Starlette's parsed-JSON cache: FastAPI validates the value parsed strictly here"
    ),
    ("services/manager.py", "_held"): MANAGER_RECORD,
    ("services/manager.py", "_restart_task"): MANAGER_RECORD,
    ("services/worker/child.py", "_exit"): (
        "os._exit: the documented way to end a child whose handler thread cannot be stopped"
    ),
}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_accesses(source: str) -> list[tuple[int, str, str]]:
    """(line, attribute, code) of every private name this source reads from something other
    than `self`/`cls`, or imports from a taskyard module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            found.append((node.lineno, node.attr, ast.unparse(node)))
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("taskyard")):
            for alias in node.names:
                if _is_private(alias.name):
                    found.append((node.lineno, alias.name, f"from {node.module} import {alias.name}"))
    return sorted(found)


def test_no_module_reads_private_names_of_another() -> None:
    offences = []
    used: set[tuple[str, str]] = set()
    for path in sorted(ROOT.rglob("*.py")):
        module = path.relative_to(ROOT).as_posix()
        for line, attr, code in private_accesses(path.read_text(encoding="utf-8")):
            if (module, attr) in ALLOWED:
                used.add((module, attr))
                continue
            offences.append(f"{module}:{line}: {code}")
    assert not offences, (
        "private names read across objects (give the consumer a public method or a small "
        "Protocol, or allow-list the access with its reason):\n" + "\n".join(offences)
    )
    assert not set(ALLOWED) - used, f"stale allow-list entries: {sorted(set(ALLOWED) - used)}"


def test_the_walk_catches_what_it_should() -> None:
    code = (
        "from taskyard.app import _Portal\n"
        "self._ok\ncls._ok\nx.__dict__\n"
        "self.app._backend()\nworker._flush_stats()\n"
    )
    assert [(line, attr) for line, attr, _ in private_accesses(code)] == [
        (1, "_Portal"), (5, "_backend"), (6, "_flush_stats"),
    ]
