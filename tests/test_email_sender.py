"""Sending mail: SMTP (aiosmtplib) against a real aiosmtpd server on loopback, and the development outbox."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lucia_fastapi.features.email.sender import EmailMessage, EmailSender, OutboxEmailSender, SMTPEmailSender
from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.smtp import SMTPTestServer

MESSAGE = EmailMessage(
    to="ada@example.com",
    subject="Confirm your address",
    text="Open https://app.example/verify?token=secret-token to confirm.",
    html="<p><a href='https://app.example/verify?token=secret-token'>Confirm</a></p>",
)


@pytest.fixture
def smtp() -> Iterator[SMTPTestServer]:
    with SMTPTestServer() as server:
        yield server


def plain_sender(server: SMTPTestServer, **options: object) -> SMTPEmailSender:
    return SMTPEmailSender(
        host=server.host,
        port=server.port,
        security="none",
        from_address="App <app@example.com>",
        **options,  # type: ignore[arg-type]
    )


async def test_a_message_arrives_with_text_and_html(smtp: SMTPTestServer) -> None:
    sender = plain_sender(smtp)
    assert isinstance(sender, EmailSender)
    await sender.send(MESSAGE)
    await sender.aclose()
    mail = smtp.wait_for(to="ada@example.com")
    assert mail.mail_from == "app@example.com"
    assert mail.subject == "Confirm your address"
    assert "token=secret-token" in mail.text
    assert mail.html is not None and "<a href=" in mail.html
    assert mail.message["Message-ID"] and mail.message["Date"]
    assert sender.sent == 1 and sender.failed == 0


async def test_a_slow_server_neither_delays_send_nor_blocks_the_loop() -> None:
    with SMTPTestServer(delay=1.0) as slow:
        sender = plain_sender(slow)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        await sender.send(MESSAGE)
        assert slow.messages == [], "send() returned before the server accepted the message: it was queued"
        await sender.join()
        ticking.cancel()
        assert len(slow.messages) == 1
        assert ticks > 10, "the event loop kept running while the mail was being delivered"
        await sender.aclose()


async def test_an_unreachable_server_is_retried_then_logged(caplog: pytest.LogCaptureFixture) -> None:
    sender = SMTPEmailSender(
        host="127.0.0.1", port=free_port(), security="none", from_address="app@example.com", retry_delay=0.01
    )
    with caplog.at_level(logging.INFO, logger="lucia_fastapi"):
        await sender.send(MESSAGE)
        await sender.aclose()
    assert sender.failed == 1 and sender.sent == 0
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "ada@example.com" in errors[0].getMessage() and errors[0].exc_info
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2  # attempts 1 and 2 of 3
    assert "secret-token" not in caplog.text, "log lines never carry the body's links"


async def test_a_full_queue_drops_with_an_error_line(caplog: pytest.LogCaptureFixture) -> None:
    with SMTPTestServer(delay=0.5) as slow:
        sender = plain_sender(slow, queue_size=1, workers=1)
        with caplog.at_level(logging.ERROR, logger="lucia_fastapi"):
            for _ in range(4):
                await sender.send(MESSAGE)
            await sender.aclose()
        assert sender.sent + sender.dropped == 4 and sender.dropped >= 2
        assert "mail queue full" in caplog.text


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_starttls_is_used_and_verified(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server_context, client_context = self_signed(tmp_path)
    with SMTPTestServer(tls_context=server_context, require_starttls=True) as tls_server:
        trusted = SMTPEmailSender(
            host=tls_server.host,
            port=tls_server.port,
            security="starttls",
            from_address="app@example.com",
            tls_context=client_context,
        )
        await trusted.deliver(MESSAGE)  # raises if STARTTLS or the certificate check failed
        assert len(tls_server.messages) == 1
        untrusted = SMTPEmailSender(
            host=tls_server.host, port=tls_server.port, from_address="app@example.com", attempts=1
        )  # the system CAs do not know this certificate: refused, logged, not sent
        with caplog.at_level(logging.ERROR, logger="lucia_fastapi"):
            await untrusted.send(MESSAGE)
            await untrusted.aclose()
        assert untrusted.failed == 1 and len(tls_server.messages) == 1
        plain = plain_sender(tls_server, attempts=1)  # the server insists on STARTTLS: nothing sent in clear
        await plain.send(MESSAGE)
        await plain.aclose()
        assert plain.failed == 1 and len(tls_server.messages) == 1


def test_header_injection_and_huge_addresses_are_refused() -> None:
    with pytest.raises(ValueError, match="single line"):
        EmailMessage(to="ada@example.com\r\nBcc: all@example.com", subject="x", text="x")
    with pytest.raises(ValueError, match="single line"):
        EmailMessage(to="ada@example.com", subject="hi\nBcc: all@example.com", text="x")
    with pytest.raises(ValueError, match="longer"):
        EmailMessage(to="a" * 300 + "@example.com", subject="x", text="x")
    assert "secret-token" not in repr(MESSAGE)


async def test_the_outbox_writes_files_and_reads_them_back(tmp_path: Path) -> None:
    outbox = OutboxEmailSender(tmp_path / "outbox", keep=3)
    assert isinstance(outbox, EmailSender)
    for i in range(5):
        await outbox.send(
            EmailMessage(to=f"user{i}@example.com", subject=f"Mail {i}", text=f"body {i}", html="<b>h</b>")
        )
    stored = outbox.messages()
    assert [m.subject for m in stored] == ["Mail 4", "Mail 3", "Mail 2"]  # newest first, only `keep` of them
    assert stored[0].text.strip() == "body 4" and stored[0].html is not None
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3
    assert outbox.messages(to="USER3@example.com")[0].subject == "Mail 3"
    in_memory = OutboxEmailSender()
    await in_memory.send(MESSAGE)
    assert "token=secret-token" in in_memory.messages()[0].text
