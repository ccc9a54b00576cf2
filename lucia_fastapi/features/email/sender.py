"""Sending mail: the ``EmailSender`` protocol, SMTP on aiosmtplib off the request path, and a development outbox.

Every flow of ``lucia_fastapi.features.email`` sends through an ``EmailSender``: anything with
``async def send(self, message: EmailMessage) -> None``. Two ship here:

- ``SMTPEmailSender``: a real mail server over STARTTLS or implicit TLS (aiosmtplib, extra ``[email]``).
  ``send`` only puts the message on a bounded in-process queue and returns; background workers deliver it, so a
  slow or dead mail server never blocks the event loop nor delays the HTTP answer. Failures are retried, then
  logged with their traceback on the ``lucia_fastapi`` logger; a full queue is logged too. Nothing is dropped
  without a log line.
- ``OutboxEmailSender``: for development and tests. Writes each message as an ``.eml`` file in a folder (or keeps
  it in memory) and logs one line; ``messages()`` reads them back (the example's ``/dev/outbox`` page).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import email.utils
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage as MIMEMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

logger = logging.getLogger("lucia_fastapi")

MAX_ADDRESS_LENGTH = 254  # RFC 5321's path limit, less the brackets
MAX_SUBJECT_LENGTH = 998  # RFC 5322's line limit
Security = Literal["starttls", "tls", "none"]


def _check_header(name: str, value: str, limit: int) -> None:
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError(f"email {name} must be a single line")
    if len(value) > limit:
        raise ValueError(f"email {name} is longer than {limit} characters")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailMessage:
    """One message to one recipient: a plain-text body and, optionally, an HTML alternative.

    ``sender`` (the ``From`` address) defaults to the ``EmailSender``'s own. Bodies often carry single-use links,
    so ``repr()`` shows only the recipient and the subject. Header values are single lines (no header injection).
    """

    to: str
    subject: str
    text: str
    html: str | None = None
    sender: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_header("recipient", self.to, MAX_ADDRESS_LENGTH)
        if "@" not in self.to:
            raise ValueError("email recipient must be an address")
        _check_header("subject", self.subject, MAX_SUBJECT_LENGTH)
        if self.sender is not None:
            _check_header("sender", self.sender, MAX_ADDRESS_LENGTH)
        for name, value in self.headers.items():
            _check_header("header name", name, 100)
            _check_header(f"header {name}", value, MAX_SUBJECT_LENGTH)

    def __repr__(self) -> str:
        return f"EmailMessage(to={self.to!r}, subject={self.subject!r})"

    def to_mime(self, default_sender: str) -> MIMEMessage:
        """The RFC 5322 message: ``text/plain``, plus ``text/html`` as ``multipart/alternative`` when given."""
        mime = MIMEMessage(policy=email.policy.SMTP)
        sender = self.sender or default_sender
        mime["From"] = sender
        mime["To"] = self.to
        mime["Subject"] = self.subject
        mime["Date"] = email.utils.formatdate(localtime=False)
        domain = sender.rpartition("@")[2].strip("> ") or "localhost"
        mime["Message-ID"] = email.utils.make_msgid(domain=domain)
        for name, value in self.headers.items():
            mime[name] = value
        mime.set_content(self.text)
        if self.html is not None:
            mime.add_alternative(self.html, subtype="html")
        return mime


@runtime_checkable
class EmailSender(Protocol):
    """Where the email flows hand their messages. ``send`` must return quickly (queue, don't deliver inline)
    and must not raise for delivery problems that happen later: log them instead."""

    async def send(self, message: EmailMessage) -> None:
        """Take ``message`` for delivery."""
        ...


class SMTPEmailSender:
    """Deliver mail through an SMTP server with aiosmtplib, in the background.

    ``security``: ``"starttls"`` (default; port 587: the connection is upgraded and refused if the server cannot),
    ``"tls"`` (implicit TLS, port 465) or ``"none"`` (plain text: a local relay or a test server only).
    ``timeout`` bounds every network step (seconds). ``queue_size`` bounds the messages waiting in this process;
    ``workers`` deliver concurrently; a failed delivery is tried ``attempts`` times in all, ``retry_delay`` apart
    (doubling), then logged as an error with its traceback.

    Call ``await sender.aclose()`` at shutdown (e.g. in the app's lifespan) to deliver what is queued;
    ``await sender.join()`` waits until the queue is empty (tests).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int | None = None,
        from_address: str,
        username: str | None = None,
        password: str | None = None,
        security: Security = "starttls",
        timeout: float = 15.0,
        tls_context: ssl.SSLContext | None = None,
        validate_certs: bool = True,
        local_hostname: str | None = None,
        queue_size: int = 1000,
        workers: int = 2,
        attempts: int = 3,
        retry_delay: float = 2.0,
    ) -> None:
        try:
            import aiosmtplib  # noqa: F401 - fail at construction, not at the first mail
        except ImportError as error:  # pragma: no cover - depends on the installed extras
            raise ImportError("SMTPEmailSender needs aiosmtplib: pip install 'lucia_fastapi[email]'") from error
        if security not in ("starttls", "tls", "none"):
            raise ValueError("security must be 'starttls', 'tls' or 'none'")
        if queue_size < 1 or workers < 1 or attempts < 1 or timeout <= 0:
            raise ValueError("queue_size, workers, attempts and timeout must be positive")
        _check_header("from_address", from_address, MAX_ADDRESS_LENGTH)
        self.host = host
        self.port = port if port is not None else {"starttls": 587, "tls": 465, "none": 25}[security]
        self.from_address = from_address
        self.security: Security = security
        # How aiosmtplib.send reaches the server, gathered once: every delivery passes it as it is.
        self._connection: dict[str, Any] = {
            "hostname": host,
            "port": self.port,
            "username": username,
            "password": password,
            "use_tls": security == "tls",
            "start_tls": security == "starttls",
            "timeout": timeout,
            "tls_context": tls_context,
            "validate_certs": validate_certs,
            "local_hostname": local_hostname,
        }
        self.queue_size = queue_size
        self.worker_count = workers
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.sent = 0  # delivered messages
        self.failed = 0  # messages given up after every attempt
        self.dropped = 0  # messages refused because the queue was full or the sender closed
        self._queue: asyncio.Queue[EmailMessage] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._closed = False

    def __repr__(self) -> str:
        return f"SMTPEmailSender(host={self.host!r}, port={self.port}, security={self.security!r})"

    async def send(self, message: EmailMessage) -> None:
        """Queue ``message`` for delivery and return at once. A full queue drops it with an error log line."""
        if self._closed:
            self.dropped += 1
            logger.error("SMTPEmailSender is closed: mail to %s (%r) not sent", message.to, message.subject)
            return
        queue = self._ensure_workers()
        try:
            queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            logger.error(
                "mail queue full (%d waiting for %s:%d): mail to %s (%r) dropped",
                queue.qsize(),
                self.host,
                self.port,
                message.to,
                message.subject,
            )

    async def deliver(self, message: EmailMessage) -> None:
        """Deliver one message now, in the caller's task (one attempt; raises aiosmtplib's errors)."""
        import aiosmtplib

        mime = message.to_mime(self.from_address)
        sender = email.utils.parseaddr(message.sender or self.from_address)[1]
        await aiosmtplib.send(mime, sender=sender, recipients=[message.to], **self._connection)

    async def join(self) -> None:
        """Wait until every queued message was delivered or given up."""
        if self._queue is not None and self._loop is asyncio.get_running_loop():
            await self._queue.join()

    async def aclose(self, *, drain_seconds: float | None = 30.0) -> None:
        """Stop taking messages, deliver the queued ones (for at most ``drain_seconds``), stop the workers.
        Messages still queued after that are logged as not sent."""
        self._closed = True
        try:
            if drain_seconds is None:
                await self.join()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.join(), drain_seconds)
        finally:
            for task in self._workers:
                task.cancel()
            for task in self._workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._workers = []
            if self._queue is not None:
                while not self._queue.empty():
                    lost = self._queue.get_nowait()
                    self.dropped += 1
                    logger.error("SMTPEmailSender closed before mail to %s (%r) was sent", lost.to, lost.subject)
            self._queue = None

    async def __aenter__(self) -> SMTPEmailSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _ensure_workers(self) -> asyncio.Queue[EmailMessage]:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._loop is not loop:  # first use, or a new event loop (tests, reloads)
            self._queue = asyncio.Queue(self.queue_size)
            self._loop = loop
            self._workers = [
                loop.create_task(self._work(), name=f"lucia_fastapi-smtp-{i}") for i in range(self.worker_count)
            ]
        return self._queue

    async def _work(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            message = await queue.get()
            try:
                await self._deliver_with_retries(message)
            except Exception:  # pragma: no cover - _deliver_with_retries logs its own failures
                logger.exception("unexpected error delivering mail to %s", message.to)
            finally:
                queue.task_done()

    async def _deliver_with_retries(self, message: EmailMessage) -> None:
        delay = self.retry_delay
        for attempt in range(1, self.attempts + 1):
            try:
                await self.deliver(message)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if attempt < self.attempts and _is_transient(error):
                    logger.warning(
                        "mail to %s via %s:%d failed (attempt %d of %d), retrying in %.1f s: %s",
                        message.to,
                        self.host,
                        self.port,
                        attempt,
                        self.attempts,
                        delay,
                        error,
                    )
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                self.failed += 1
                logger.error(
                    "mail to %s (%r) via %s:%d not sent after %d attempt(s)",
                    message.to,
                    message.subject,
                    self.host,
                    self.port,
                    attempt,
                    exc_info=error,
                )
                return
            self.sent += 1
            logger.info("mail to %s (%r) sent via %s:%d", message.to, message.subject, self.host, self.port)
            return


def _is_transient(error: Exception) -> bool:
    """Worth another try: the network, a timeout, or a 4xx reply. A 5xx reply (bad address, refused) is final."""
    import aiosmtplib

    if isinstance(error, aiosmtplib.SMTPResponseException):
        return 400 <= error.code < 500
    return isinstance(error, aiosmtplib.SMTPException | OSError | TimeoutError)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A message as the development outbox stored it (newest first from ``OutboxEmailSender.messages``)."""

    id: str
    to: str
    subject: str
    date: str
    text: str
    html: str | None

    def __repr__(self) -> str:
        return f"OutboxMessage(id={self.id!r}, to={self.to!r}, subject={self.subject!r})"


class OutboxEmailSender:
    """Development sender: no mail leaves the machine. Each message is written to ``directory`` as an ``.eml``
    file (or, without a directory, kept in memory), and one line is logged. ``messages()`` reads them back,
    newest first, for a development "outbox" page. Only the newest ``keep`` messages are kept.

    Never use it in production: anyone who can read the outbox can follow every link in it.
    """

    def __init__(
        self, directory: str | Path | None = None, *, from_address: str = "no-reply@localhost", keep: int = 200
    ) -> None:
        if keep < 1:
            raise ValueError("keep must be positive")
        self.directory = Path(directory) if directory is not None else None
        self.from_address = from_address
        self.keep = keep
        self._memory: list[tuple[str, bytes]] = []
        self._counter = 0

    def __repr__(self) -> str:
        return f"OutboxEmailSender(directory={str(self.directory) if self.directory else None!r})"

    async def send(self, message: EmailMessage) -> None:
        """Store the message and log its recipient and subject (never the body: it holds links)."""
        raw = bytes(message.to_mime(self.from_address))
        self._counter += 1
        name = f"{time.time_ns():020d}-{self._counter:06d}.eml"
        if self.directory is None:
            self._memory.append((name, raw))
            del self._memory[: -self.keep]
        else:
            await asyncio.to_thread(self._write, name, raw)
        logger.info("DEV outbox: mail to %s (%r) stored as %s", message.to, message.subject, name)

    def _write(self, name: str, raw: bytes) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{name}.tmp"
        partial.write_bytes(raw)
        partial.replace(self.directory / name)  # readers never see half a message
        for old in sorted(self.directory.glob("*.eml"))[: -self.keep]:
            old.unlink(missing_ok=True)

    def messages(self, *, to: str | None = None) -> list[OutboxMessage]:
        """The stored messages, newest first; only those to ``to`` when given (compared case-insensitively)."""
        if self.directory is None:
            raw_messages = list(self._memory)
        elif self.directory.is_dir():
            raw_messages = []
            for path in self.directory.glob("*.eml"):
                with contextlib.suppress(FileNotFoundError):
                    raw_messages.append((path.name, path.read_bytes()))
        else:
            raw_messages = []
        found = [parse_message(name.removesuffix(".eml"), raw) for name, raw in sorted(raw_messages, reverse=True)]
        if to is not None:
            found = [message for message in found if message.to.lower() == to.lower()]
        return found

    def clear(self) -> None:
        """Forget every stored message."""
        self._memory.clear()
        if self.directory is not None and self.directory.is_dir():
            for path in self.directory.glob("*.eml"):
                path.unlink(missing_ok=True)


def parse_message(message_id: str, raw: bytes) -> OutboxMessage:
    """Read an RFC 5322 message (as sent by these senders) back into its recipient, subject and bodies."""
    parsed: Any = BytesParser(policy=email.policy.default).parsebytes(raw)
    text_part = parsed.get_body(preferencelist=("plain",))
    html_part = parsed.get_body(preferencelist=("html",))
    return OutboxMessage(
        id=message_id,
        to=str(parsed["To"] or ""),
        subject=str(parsed["Subject"] or ""),
        date=str(parsed["Date"] or ""),
        text=text_part.get_content() if text_part is not None else "",
        html=html_part.get_content() if html_part is not None else None,
    )
