"""JSON only: nothing in `src/` can turn stored or received data into code or objects.

Pickle on the wire is how Celery and others lost their users' machines; this keeps the
modules that could do it out of taskyard for good. The app loader's `importlib` call is the
one place a name becomes an import, and that name comes from the operator's command line.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "taskyard"
FORBIDDEN_MODULES = {"pickle", "cPickle", "dill", "marshal", "shelve", "yaml", "jsonpickle"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
IMPORTLIB_ALLOWED = {
    "cli/loading.py",  # --app MODULE:ATTR, from the operator
    "cli/main.py",  # the CLI's own command modules, a fixed tuple
    "backends/__init__.py",  # the backend for a URL scheme, from a fixed table
    # A worker's child process imports the app the worker names on the child's command line:
    # the operator's --app, or the module of a handler registered in the worker's own app.
    "services/worker/child.py",
    # Django: the framework's own modules (a fixed list), OPTIONS["APP"] from the project's
    # settings, and the tasks modules of INSTALLED_APPS / OPTIONS["TASK_MODULES"]. A handler
    # imports the module path it was registered under at start, never a job's task name.
    "contrib/django/compat.py",
    "contrib/django/backend.py",
    "contrib/django/handlers.py",
}


def _sources() -> list[tuple[str, ast.Module]]:
    files = sorted(SRC.rglob("*.py"))
    assert files, f"no sources under {SRC}"
    return [(str(f.relative_to(SRC)), ast.parse(f.read_text(), str(f))) for f in files]


def test_no_module_that_deserialises_objects_is_imported() -> None:
    found = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            found += [(name, m) for m in modules if m.split(".")[0] in FORBIDDEN_MODULES]
    assert found == []


def test_no_eval_exec_or_data_driven_imports() -> None:
    found = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            called = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
            if called in FORBIDDEN_CALLS:
                found.append((name, called))
            is_import = isinstance(node, ast.Attribute) and node.attr == "import_module"
            if is_import and name not in IMPORTLIB_ALLOWED:
                found.append((name, "importlib.import_module"))
    assert found == []
