"""A task whose handler runs in a child process and returns a model (the child finds `app`
here by the handler's module)."""

from __future__ import annotations

import os

from pydantic import BaseModel

from taskyard import Taskyard

app = Taskyard("memory://")


class Report(BaseModel):
    """What the child returns."""

    title: str
    pid: int


@app.task("reports.build", isolation="process")
def build_report(title: str) -> Report:
    """Runs in a child process of the worker."""
    return Report(title=title, pid=os.getpid())
