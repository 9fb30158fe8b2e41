"""Job rules are written once: the backends' Python carries them out but does not restate
them. Their status sets live in `core/job.py`, their refusals in `errors.py` and `core/`."""

from __future__ import annotations

import ast
from pathlib import Path

import taskyard.backends

BACKENDS = Path(taskyard.backends.__file__).parent
#: Words of a rule's refusal that only `errors.py` and `core/` may write.
REFUSALS = ("cannot be cancelled", "can be retried", "no longer held", "can be pruned")
STATUS_NAMES = {"S", "JobStatus"}


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (str(path.relative_to(BACKENDS)), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(BACKENDS.rglob("*.py"))
    ]


def _is_status(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in STATUS_NAMES
    )


def test_backends_write_no_refusal_text_of_their_own() -> None:
    found = [
        f"{name}:{node.lineno}: {node.value!r}"
        for name, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and any(words in node.value for words in REFUSALS)
    ]
    assert found == [], "use the constructors of errors.py (or core's check_prunable)"


def test_backends_spell_out_no_set_of_statuses() -> None:
    """A set or tuple of two or more statuses (to test membership or build a constant) is
    a rule: `ACTIVE_STATUSES`, `FINISHED_STATUSES`, `CANCELLABLE_STATUSES` or
    `RETRYABLE_STATUSES` of `core/job.py` says it once."""
    found = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare) and any(
                isinstance(op, (ast.In, ast.NotIn)) for op in node.ops
            ):
                collections = node.comparators
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "frozenset", "set"
            ):
                collections = node.args
            else:
                continue
            for c in collections:
                if isinstance(c, (ast.Tuple, ast.Set, ast.List)) and sum(map(_is_status, c.elts)) >= 2:
                    found.append(f"{name}:{node.lineno}")
    assert found == [], "use the status sets of core/job.py"
