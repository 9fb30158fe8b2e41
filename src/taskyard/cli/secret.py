"""`taskyard secret`: print a fresh random secret for `http.jwt_secret` or an API key."""

from __future__ import annotations

import sys

import typer

from taskyard.http.auth import new_secret


def secret() -> None:
    """Print a new random secret (48 bytes, URL-safe) on stdout; nothing is stored.

    Use it for http.jwt_secret or an API key, e.g.
    `kubectl create secret generic taskyard --from-literal=jwt-secret="$(taskyard secret)"`.
    The same without taskyard: `python -c 'import secrets; print(secrets.token_urlsafe(48))'`.
    """
    sys.stdout.write(new_secret() + "\n")


def register(cli: typer.Typer) -> None:
    """Add `secret`."""
    cli.command(name="secret")(secret)
