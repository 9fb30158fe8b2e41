"""`taskyard token create`: print a JWT signed with the configured `http.jwt_secret` (with
`aud` / `iss` when `http.jwt_audience` / `http.jwt_issuer` are set)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from taskyard.cli.loading import die
from taskyard.config import load_settings
from taskyard.errors import ConfigError
from taskyard.http.auth import Role, issue_token, parse_ttl

group = typer.Typer(help="Create API tokens.", no_args_is_help=True)


@group.command()
def create(
    role: Role = typer.Option(Role.VIEWER, "--role", help="viewer (read) or admin (everything)."),
    ttl: str = typer.Option("1d", "--ttl", help="Lifetime: 90s, 15m, 12h, 1d, 2w."),
    subject: str = typer.Option("taskyard-cli", "--subject", help="Who the token is for (logged)."),
    config: Path | None = typer.Option(None, "--config", help="Settings file (default ./taskyard.toml)."),
) -> None:
    """Print a token once, on stdout (nothing is stored or logged)."""
    try:
        seconds = parse_ttl(ttl)
    except ValueError as exc:
        raise die(str(exc)) from None
    try:
        settings = load_settings(config)
        secret = settings.http.jwt_secret
        if secret is None:
            raise die(
                "http.jwt_secret is not set: set TASKYARD_HTTP__JWT_SECRET or jwt_secret under \\[http] "
                "in taskyard.toml to a random secret (make one with `taskyard secret`)"
            )
        token = issue_token(
            secret.get_secret_value(), role=role, ttl=seconds, subject=subject,
            audience=settings.http.jwt_audience, issuer=settings.http.jwt_issuer,
        )
    except ConfigError as exc:
        raise die(str(exc)) from None
    sys.stdout.write(token + "\n")


def register(cli: typer.Typer) -> None:
    """Add `token`."""
    cli.add_typer(group, name="token")
