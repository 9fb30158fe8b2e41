"""`EmailNotifier`: each alert event as an e-mail, by SMTP (stdlib smtplib, in a thread)."""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from taskyard.core.alert import AlertEvent

__all__ = ("EmailNotifier",)


class EmailNotifier:
    """Send one message per event from `sender` to `to` through `host:port`, optionally
    upgrading with STARTTLS and logging in. The password is held, never logged."""

    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int = 25,
        sender: str,
        to: Sequence[str],
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        subject_prefix: str = "[taskyard]",
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if not to:
            raise ValueError("email notifier needs at least one recipient")
        self.host = host
        self.port = port
        self.sender = sender
        self.to = tuple(to)
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout = timeout
        self.subject_prefix = subject_prefix
        self.tls_context = tls_context

    def __repr__(self) -> str:
        return f"EmailNotifier(host={self.host!r}, port={self.port}, to={list(self.to)!r})"

    def message(self, event: AlertEvent) -> EmailMessage:
        """The e-mail for `event`: the summary as subject, the fields and JSON as body."""
        msg = EmailMessage()
        msg["Subject"] = f"{self.subject_prefix} {event.summary()}".strip()
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="taskyard")
        data = event.to_json()
        lines = [f"{key}: {value}" for key, value in data.items() if key != "labels"]
        lines.insert(3, f"labels: {event.subject}")
        msg.set_content("\n".join(lines) + "\n\n" + json.dumps(data, indent=2) + "\n")
        return msg

    async def notify(self, event: AlertEvent) -> None:
        await asyncio.to_thread(self._send, self.message(event))

    def _send(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=self.tls_context or ssl.create_default_context())
            if self.username is not None:
                smtp.login(self.username, self._password or "")
            smtp.send_message(msg)
