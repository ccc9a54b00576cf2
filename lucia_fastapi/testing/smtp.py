"""A real SMTP server for tests: aiosmtpd on a free loopback port, keeping every message it receives.

    with SMTPTestServer() as smtp:
        sender = SMTPEmailSender(host=smtp.host, port=smtp.port, security="none", from_address="app@example.com")
        ...
        message = smtp.wait_for(to="ada@example.com")        # blocks (from a test thread)
        message = await smtp.wait_for_async(to="ada@example.com")  # from async code

``delay`` makes the server slow (seconds before it answers each message's DATA), to show that sending does
not hold up a request. ``tls_context`` + ``require_starttls`` make it a STARTTLS server.
Run by hand with ``python -m lucia_fastapi.testing.smtp`` (prints host and port, stops on Ctrl-C).
"""

from __future__ import annotations

import asyncio
import email.policy
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from types import TracebackType
from typing import Any

from lucia_fastapi.testing.postgres import free_port


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message as the server received it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part: Any = self.message.get_body(preferencelist=("plain",))
        return str(part.get_content()) if part is not None else ""

    @property
    def html(self) -> str | None:
        part: Any = self.message.get_body(preferencelist=("html",))
        return str(part.get_content()) if part is not None else None


class SMTPTestServer:
    """An aiosmtpd ``Controller`` on 127.0.0.1 (its own thread and event loop) collecting messages."""

    def __init__(
        self,
        *,
        delay: float = 0.0,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
    ) -> None:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as error:  # pragma: no cover - depends on the installed extras
            raise ImportError("SMTPTestServer needs aiosmtpd: pip install 'lucia_fastapi[testing]'") from error
        self.host = "127.0.0.1"
        self.port = free_port()
        self.delay = delay
        self.messages: list[ReceivedMail] = []
        self._changed = threading.Condition()
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            tls_context=tls_context,
            require_starttls=require_starttls,
            ready_timeout=10,
        )
        self._started = False

    def start(self) -> SMTPTestServer:
        """Start listening; returns the server."""
        self._controller.start()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        if self._started:
            self._controller.stop()
            self._started = False

    def __enter__(self) -> SMTPTestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _received(self, mail: ReceivedMail) -> None:
        with self._changed:
            self.messages.append(mail)
            self._changed.notify_all()

    def find(self, *, to: str | None = None, subject_contains: str | None = None) -> list[ReceivedMail]:
        """The messages received so far to ``to`` (and with ``subject_contains``), in order of arrival."""
        with self._changed:
            return [
                mail
                for mail in self.messages
                if (to is None or to.lower() in (r.lower() for r in mail.rcpt_tos))
                and (subject_contains is None or subject_contains.lower() in mail.subject.lower())
            ]

    def wait_for(
        self, *, to: str | None = None, subject_contains: str | None = None, count: int = 1, timeout: float = 15.0
    ) -> ReceivedMail:
        """The ``count``-th matching message (in order of arrival) once it has come; ``AssertionError`` after
        ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = self.find(to=to, subject_contains=subject_contains)
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.rcpt_tos, m.subject) for m in self.messages]
                    raise AssertionError(
                        f"no mail to {to!r} with {subject_contains!r} within {timeout} s; received: {seen}"
                    )
                self._changed.wait(left)

    async def wait_for_async(
        self, *, to: str | None = None, subject_contains: str | None = None, count: int = 1, within: float = 15.0
    ) -> ReceivedMail:
        """``wait_for`` (``within`` seconds) without blocking the event loop."""
        return await asyncio.to_thread(
            self.wait_for, to=to, subject_contains=subject_contains, count=count, timeout=within
        )


class _Handler:
    def __init__(self, server: SMTPTestServer) -> None:
        self.server = server

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        parsed: Any = BytesParser(policy=email.policy.default).parsebytes(envelope.content)
        self.server._received(ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


if __name__ == "__main__":  # pragma: no cover - a manual tool
    with SMTPTestServer() as smtp:
        print(f"SMTP server on {smtp.host}:{smtp.port} (Ctrl-C stops it)", flush=True)
        try:
            while True:
                time.sleep(1)
                for mail in smtp.messages:
                    print(mail.rcpt_tos, mail.subject)
                smtp.messages.clear()
        except KeyboardInterrupt:
            pass
