"""mypy and pyright on the task handles: `handles.py` must pass both (mypy --strict, pyright
strict), and each marked line of `handles_wrong.py` must fail both, with the expected error."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
GOOD = HERE / "handles.py"
WRONG = HERE / "handles_wrong.py"
README = ROOT / "README.md"

#: marker → (mypy's error code and text, pyright's rule and text) expected on that line.
EXPECTED = {
    "payload": (("arg-type", 'incompatible type "Invoice"; expected "Email"'),
                ("reportArgumentType", '"Invoice" is not assignable to "Email"')),
    "option": (("call-arg", 'Unexpected keyword argument "prio"'),
               ("reportCallIssue", 'No parameter named "prio"')),
    "option-type": (("arg-type", 'Argument "delay" to "using"'),
                    ("reportArgumentType", 'parameter "delay" of type "float | None"')),
    "many": (("list-item", 'incompatible type "Invoice"; expected "Email"'),
             ("reportArgumentType", '"Invoice" is not assignable to "Email"')),
    # The step's payload type comes from the handle: mypy cannot solve it for both arguments.
    "step-payload": (("misc", 'Cannot infer value of type parameter "P" of "step"'),
                     ("reportArgumentType", '"Invoice" is not assignable to "Email"')),
    "no-payload": (("call-overload", 'No overload variant of "enqueue"'),
                   ("reportCallIssue", 'No overloads for "enqueue"')),
}


def _marked_lines() -> dict[int, str]:
    lines = WRONG.read_text().splitlines()
    marks = {n: m.group(1) for n, line in enumerate(lines, 1) if (m := re.search(r"# wrong: (\S+)", line))}
    assert sorted(marks.values()) == sorted(EXPECTED), "every marker has its expectation"
    return marks


def readme_handles() -> str:
    """The Python block of the README's "Typed task handles" section."""
    text = README.read_text()
    section = text[text.index("## Typed task handles"):]
    return re.findall(r"```python\n(.*?)```", section, re.S)[0]


@pytest.fixture
def readme_module(tmp_path: Path) -> Path:
    """The README's handle example as a module of its own (it must pass both checkers too)."""
    path = tmp_path / "readme_handles.py"
    path.write_text(readme_handles())
    return path


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI needs it: `pip install -e '.[dev]'`, node on PATH)")
    pytest.skip(what)


def _run(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_mypy_accepts_the_typed_module_and_rejects_each_mistake(tmp_path: Path, readme_module: Path) -> None:
    try:
        import mypy  # noqa: F401
    except ImportError:
        _missing("mypy is not installed")
    done = _run([
        sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
        "--no-error-summary", "--hide-error-context", str(GOOD), str(WRONG), str(readme_module),
    ])
    errors: dict[tuple[str, int], list[str]] = {}
    for line in done.stdout.splitlines():
        m = re.match(r"(.+?):(\d+): error: (.*)", line)
        if m:
            errors.setdefault((Path(m.group(1)).name, int(m.group(2))), []).append(m.group(3))
    assert done.returncode == 1, done.stdout + done.stderr
    marks = _marked_lines()
    assert sorted(errors) == sorted((WRONG.name, n) for n in marks), done.stdout
    for n, mark in marks.items():
        code, text = EXPECTED[mark][0]
        assert any(f"[{code}]" in e and text in e for e in errors[WRONG.name, n]), (mark, errors[WRONG.name, n])


def test_pyright_accepts_the_typed_module_and_rejects_each_mistake(readme_module: Path) -> None:
    if shutil.which("node") is None:
        _missing("pyright needs node on PATH")
    try:
        import pyright  # noqa: F401
    except ImportError:
        _missing("pyright is not installed")
    # Without IGNORE_WARNINGS the pyright wrapper asks PyPI for a newer version on each run.
    env = {**os.environ, "PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}
    done = _run([
        sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable,
        str(GOOD), str(WRONG), str(readme_module),
    ], env)
    report = json.loads(done.stdout)
    errors: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for d in report["generalDiagnostics"]:
        if d["severity"] == "error":
            key = (Path(d["file"]).name, d["range"]["start"]["line"] + 1)
            errors.setdefault(key, []).append((d.get("rule", ""), d["message"]))
    marks = _marked_lines()
    assert sorted(errors) == sorted((WRONG.name, n) for n in marks), errors
    for n, mark in marks.items():
        rule, text = EXPECTED[mark][1]
        assert any(r == rule and text in msg for r, msg in errors[WRONG.name, n]), (mark, errors[WRONG.name, n])
