"""The mails the email flows send, in plain text and HTML. Override any of them by subclassing ``EmailTemplates``
(or pass a whole other object with the same methods) to ``EmailFlows(templates=...)``.

Every method gets a ``MailContext`` and returns a ``RenderedMail`` (subject, text, html). Values are escaped for
HTML here; links are built by the flows from the app's ``base_url``, never from a request's Host header.
"""

from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MailContext:
    """What a template may show. ``link``/``code`` are secrets: only ever put them in the mail's body."""

    app_name: str
    address: str  # the recipient
    link: str | None = None
    code: str | None = None
    expires_in_minutes: int | None = None
    new_address: str | None = None  # email change: the address that replaces ``address``
    reset_link: str | None = None  # "someone tried to sign up": where the owner can reset a forgotten password

    def __repr__(self) -> str:
        return f"MailContext(address={self.address!r})"


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """A mail ready to send: its subject, plain-text body and HTML body."""

    subject: str
    text: str
    html: str

    def __repr__(self) -> str:
        return f"RenderedMail(subject={self.subject!r})"


def _expiry(ctx: MailContext) -> str:
    if ctx.expires_in_minutes is None:
        return ""
    minutes = ctx.expires_in_minutes
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"It expires in {hours} hour{'s' if hours > 1 else ''}."
    return f"It expires in {minutes} minute{'s' if minutes != 1 else ''}."


def _page(title: str, *paragraphs: str) -> str:
    body = "".join(f"<p>{paragraph}</p>" for paragraph in paragraphs if paragraph)
    return (
        '<!doctype html><html><body style="font-family: sans-serif; line-height: 1.5">'
        f"<h2>{html.escape(title)}</h2>{body}</body></html>"
    )


def _button(link: str, label: str) -> str:
    return (
        f'<a href="{html.escape(link, quote=True)}" style="background:#2563eb;color:#fff;padding:10px 16px;'
        f'border-radius:6px;text-decoration:none">{html.escape(label)}</a>'
    )


class EmailTemplates:
    """The default wording. Each method may be overridden on its own."""

    def verify_email(self, ctx: MailContext) -> RenderedMail:
        """The verification mail: a link and, when ``ctx.code`` is set, a code."""
        subject = f"Confirm your email address for {ctx.app_name}"
        lines = [f"Please confirm that {ctx.address} is your email address."]
        parts = [f"Please confirm that <b>{html.escape(ctx.address)}</b> is your email address."]
        if ctx.link:
            lines.append(f"Open this link to confirm it:\n{ctx.link}")
            parts.append(_button(ctx.link, "Confirm my address"))
        if ctx.code:
            lines.append(f"Or enter this code: {ctx.code}")
            parts.append(f"Or enter this code: <b style='font-size:1.3em'>{html.escape(ctx.code)}</b>")
        lines += [_expiry(ctx), "If you did not ask for this, ignore this mail."]
        parts += [html.escape(_expiry(ctx)), "If you did not ask for this, ignore this mail."]
        return RenderedMail(subject, "\n\n".join(line for line in lines if line), _page(subject, *parts))

    def password_reset(self, ctx: MailContext) -> RenderedMail:
        """The password reset mail, with its single-use link."""
        subject = f"Reset your {ctx.app_name} password"
        assert ctx.link is not None
        text = (
            f"Someone (hopefully you) asked to reset the password of the {ctx.app_name} account for {ctx.address}."
            f"\n\nOpen this link to choose a new password:\n{ctx.link}\n\n{_expiry(ctx)} It works once. "
            "Setting a new password signs you out everywhere.\n\nIf you did not ask for this, ignore this mail: "
            "your password stays as it is."
        )
        page = _page(
            subject,
            f"Someone (hopefully you) asked to reset the password of the {html.escape(ctx.app_name)} account for "
            f"<b>{html.escape(ctx.address)}</b>.",
            _button(ctx.link, "Choose a new password"),
            f"{html.escape(_expiry(ctx))} It works once. Setting a new password signs you out everywhere.",
            "If you did not ask for this, ignore this mail: your password stays as it is.",
        )
        return RenderedMail(subject, text, page)

    def confirm_email_change(self, ctx: MailContext) -> RenderedMail:
        """To the new address: the link that confirms an email change."""
        subject = f"Confirm your new email address for {ctx.app_name}"
        assert ctx.link is not None
        text = (
            f"You asked to use {ctx.address} for your {ctx.app_name} account.\n\n"
            f"Open this link to confirm it:\n{ctx.link}\n\n{_expiry(ctx)}\n\n"
            "Until you do, your account keeps its current address. If you did not ask for this, ignore this mail."
        )
        page = _page(
            subject,
            f"You asked to use <b>{html.escape(ctx.address)}</b> for your {html.escape(ctx.app_name)} account.",
            _button(ctx.link, "Confirm my new address"),
            html.escape(_expiry(ctx)),
            "Until you do, your account keeps its current address. If you did not ask for this, ignore this mail.",
        )
        return RenderedMail(subject, text, page)

    def email_changed(self, ctx: MailContext) -> RenderedMail:
        """To the old address: the address of the account was changed."""
        subject = f"Your {ctx.app_name} email address was changed"
        text = (
            f"The email address of your {ctx.app_name} account was changed from {ctx.address} to "
            f"{ctx.new_address}. You now sign in with the new address.\n\n"
            "If you did not do this, reset your password and contact us at once."
        )
        page = _page(
            subject,
            f"The email address of your {html.escape(ctx.app_name)} account was changed from "
            f"<b>{html.escape(ctx.address)}</b> to <b>{html.escape(ctx.new_address or '')}</b>. "
            "You now sign in with the new address.",
            "If you did not do this, reset your password and contact us at once.",
        )
        return RenderedMail(subject, text, page)

    def address_in_use(self, ctx: MailContext) -> RenderedMail:
        """To an address that already has an account, when someone signs up (or changes to) it."""
        subject = f"Someone tried to sign up for {ctx.app_name} with your address"
        reset = f"\n\nForgot your password? Reset it here:\n{ctx.reset_link}" if ctx.reset_link else ""
        text = (
            f"Someone tried to create a {ctx.app_name} account with {ctx.address}, but you already have one. "
            f"If it was you, just sign in.{reset}\n\nIf it was not you, you can ignore this mail: nothing changed."
        )
        page = _page(
            subject,
            f"Someone tried to create a {html.escape(ctx.app_name)} account with <b>{html.escape(ctx.address)}</b>, "
            "but you already have one. If it was you, just sign in.",
            _button(ctx.reset_link, "Reset my password") if ctx.reset_link else "",
            "If it was not you, you can ignore this mail: nothing changed.",
        )
        return RenderedMail(subject, text, page)
