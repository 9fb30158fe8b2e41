"""Two different apps for one store (a new app started beside another, or two versions of
one app in a rolling deploy). Both use the `default` queue; each knows only its own task.
Every run appends `<job id> <attempt> <pid> <app>` to the file named by
`TASKYARD_TEST_RUNLOG`.
"""

from __future__ import annotations

import os

from taskyard import Retry, Taskyard


def _log(ctx, name: str) -> None:
    with open(os.environ["TASKYARD_TEST_RUNLOG"], "a") as f:
        f.write(f"{ctx.job.id} {ctx.attempt} {os.getpid()} {name}\n")


async def thumbnail(payload: dict, ctx) -> str:
    _log(ctx, "images")
    return "thumb"


async def send(payload: dict, ctx) -> str:
    _log(ctx, "mail")
    return "sent"


def build_images(backend: str | None = None) -> Taskyard:
    """The app that knows `images.thumbnail` only."""
    app = Taskyard(backend)
    app.task("images.thumbnail", retry=Retry(attempts=1))(thumbnail)
    return app


def build_mail(backend: str | None = None) -> Taskyard:
    """The app that knows `mail.send` only."""
    app = Taskyard(backend)
    app.task("mail.send", retry=Retry(attempts=1))(send)
    return app


images = build_images()
mail = build_mail()
