"""The mails the email flows send, in plain text and HTML. Override any of them by subclassing ``EmailTemplates``
(or pass a whole other object with the same methods) to ``EmailFlows(templates=...)``.

Every method gets a ``MailContext`` and returns a ``RenderedMail`` (subject, text, html). Values are escaped for
HTML here; links are built by the flows from the app's ``base_url``, never from a request's Host header.
"""

from __future__ import annotations

import html
import string
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class MailContext:
    """What a template may show. ``link``/``code`` are secrets: only ever put them in the mail's body (``repr()``
    shows the recipient only)."""

    app_name: str = field(repr=False)
    address: str  # the recipient
    link: str | None = field(default=None, repr=False)
    code: str | None = field(default=None, repr=False)
    expires_in_minutes: int | None = field(default=None, repr=False)
    # email change: the address that replaces ``address``
    new_address: str | None = field(default=None, repr=False)
    # "someone tried to sign up": where the owner can reset a forgotten password
    reset_link: str | None = field(default=None, repr=False)
    # a security notice: what it is about in a word or two (the provider that was connected, say)
    detail: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """A mail ready to send: its subject, plain-text body and HTML body (``repr()`` shows the subject only: the
    bodies carry secrets)."""

    subject: str
    text: str = field(repr=False)
    html: str = field(repr=False)


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


class _TextFields(string.Formatter):
    """Fills a template in for the plain-text body (and the subject): every value as it is; ``:b`` is for HTML."""

    def format_field(self, value: Any, format_spec: str) -> str:
        return str(value)


class _HtmlFields(string.Formatter):
    """Fills a template in for the HTML body: every value escaped, ``{name:b}`` in bold."""

    def format_field(self, value: Any, format_spec: str) -> str:
        escaped = html.escape(str(value))
        return f"<b>{escaped}</b>" if format_spec == "b" else escaped


_TEXT, _HTML = _TextFields(), _HtmlFields()


@dataclass(frozen=True, slots=True)
class _Link:
    """The paragraph of the secret link in the context's ``attribute`` (``link``, ``reset_link``): ``lead`` then
    the URL on its own line in the text body, a button saying ``button`` in the HTML; left out without that link."""

    attribute: str
    lead: str
    button: str


@dataclass(frozen=True, slots=True)
class _Code:
    """The paragraph of the secret code, after ``lead``, large and bold in the HTML; left out without a code."""

    lead: str


@dataclass(frozen=True, slots=True)
class _Wording:
    """One mail's words. The subject and each plain paragraph are ``str.format`` templates over ``app_name``,
    ``address``, ``new_address`` and ``expiry``; ``{address:b}`` is bold in the HTML. The text and HTML bodies
    come from the same words, so that they never drift apart; a paragraph that comes out empty is left out."""

    subject: str
    paragraphs: tuple[str | _Link | _Code, ...]


def _render(wording: _Wording, ctx: MailContext) -> RenderedMail:
    fields = {
        "app_name": ctx.app_name,
        "address": ctx.address,
        "new_address": ctx.new_address or "",
        "detail": ctx.detail or "",
        "expiry": _expiry(ctx),
    }
    subject = _TEXT.vformat(wording.subject, (), fields)
    text: list[str] = []
    page: list[str] = []
    for paragraph in wording.paragraphs:
        if isinstance(paragraph, _Link):
            link = getattr(ctx, paragraph.attribute)
            if link:
                text.append(f"{paragraph.lead}\n{link}")
                page.append(_button(link, paragraph.button))
        elif isinstance(paragraph, _Code):
            if ctx.code:
                text.append(f"{paragraph.lead} {ctx.code}")
                page.append(f"{paragraph.lead} <b style='font-size:1.3em'>{html.escape(ctx.code)}</b>")
        else:
            text.append(_TEXT.vformat(paragraph, (), fields))
            page.append(_HTML.vformat(paragraph, (), fields))
    return RenderedMail(subject, "\n\n".join(line for line in text if line), _page(subject, *page))


_VERIFY_EMAIL = _Wording(
    "Confirm your email address for {app_name}",
    (
        "Please confirm that {address:b} is your email address.",
        _Link("link", "Open this link to confirm it:", "Confirm my address"),
        _Code("Or enter this code:"),
        "{expiry}",
        "If you did not ask for this, ignore this mail.",
    ),
)
_PASSWORD_RESET = _Wording(
    "Reset your {app_name} password",
    (
        "Someone (hopefully you) asked to reset the password of the {app_name} account for {address:b}.",
        _Link("link", "Open this link to choose a new password:", "Choose a new password"),
        "{expiry} It works once. Setting a new password signs you out everywhere.",
        "If you did not ask for this, ignore this mail: your password stays as it is.",
    ),
)
_SIGN_IN = _Wording(
    "Sign in to {app_name}",
    (
        "Someone (hopefully you) asked to sign in to {app_name} as {address:b}.",
        _Link("link", "Open this link in the browser where you asked:", "Sign in"),
        _Code("Or type this code there:"),
        "{expiry} Either one works once. If you did not ask for this, ignore this mail: nobody can sign in with it"
        " without this mailbox.",
    ),
)
_CONFIRM_EMAIL_CHANGE = _Wording(
    "Confirm your new email address for {app_name}",
    (
        "You asked to use {address:b} for your {app_name} account.",
        _Link("link", "Open this link to confirm it:", "Confirm my new address"),
        "{expiry}",
        "Until you do, your account keeps its current address. If you did not ask for this, ignore this mail.",
    ),
)
_EMAIL_CHANGED = _Wording(
    "Your {app_name} email address was changed",
    (
        "The email address of your {app_name} account was changed from {address:b} to {new_address:b}. "
        "You now sign in with the new address.",
        "If you did not do this, reset your password and contact us at once.",
    ),
)
_EMAIL_CHANGE_REQUESTED = _Wording(
    "Someone asked to change your {app_name} email address",
    (
        "Someone signed in to your {app_name} account asked to change its address from {address:b} to "
        "{new_address:b}. Nothing changes until the new address is confirmed.",
        _Link("link", "If this was not you, cancel it here (every device is signed out):", "Cancel the change"),
        "{expiry}",
        "If it was you, there is nothing to do.",
    ),
)
_NOT_YOU = "If this was not you, reset your password at once and review your account's security settings."
SECURITY_NOTICES: dict[str, _Wording] = {
    "password_changed": _Wording(
        "Your {app_name} password was changed",
        (
            "The password of your {app_name} account ({address:b}) was changed. Every other device was signed out.",
            _NOT_YOU,
        ),
    ),
    "password_reset": _Wording(
        "Your {app_name} password was reset",
        (
            "The password of your {app_name} account ({address:b}) was reset with a link mailed to this address. "
            "Every device was signed out.",
            _NOT_YOU,
        ),
    ),
    "email_changed": _EMAIL_CHANGED,
    "provider_linked": _Wording(
        "A sign-in method was connected to your {app_name} account",
        ("{detail} can now be used to sign in to your {app_name} account ({address:b}).", _NOT_YOU),
    ),
    "provider_unlinked": _Wording(
        "A sign-in method was removed from your {app_name} account",
        ("{detail} can no longer be used to sign in to your {app_name} account ({address:b}).", _NOT_YOU),
    ),
    "account_banned": _Wording(
        "Your {app_name} account was suspended",
        (
            "Your {app_name} account ({address:b}) was suspended by an administrator, and every device was signed out.",
            "If you think this is a mistake, contact us.",
        ),
    ),
    "account_deleted": _Wording(
        "Your {app_name} account was deleted",
        (
            "Your {app_name} account ({address:b}) and everything stored with it were deleted.",
            "If this was not you, contact us at once.",
        ),
    ),
}
"""The credential events the email flows tell the account's address about (MFA changes are told by the MFA
feature's notifier; "sign out everywhere" only ever comes from the owner's own session)."""
_ADDRESS_IN_USE = _Wording(
    "Someone tried to sign up for {app_name} with your address",
    (
        "Someone tried to create a {app_name} account with {address:b}, but you already have one. "
        "If it was you, just sign in.",
        _Link("reset_link", "Forgot your password? Reset it here:", "Reset my password"),
        "If it was not you, you can ignore this mail: nothing changed.",
    ),
)


class EmailTemplates:
    """The default wording. Each method may be overridden on its own."""

    def verify_email(self, ctx: MailContext) -> RenderedMail:
        """The verification mail: a link and, when ``ctx.code`` is set, a code."""
        return _render(_VERIFY_EMAIL, ctx)

    def password_reset(self, ctx: MailContext) -> RenderedMail:
        """The password reset mail, with its single-use link."""
        assert ctx.link is not None
        return _render(_PASSWORD_RESET, ctx)

    def sign_in(self, ctx: MailContext) -> RenderedMail:
        """Sign in by email: a link (for the browser that asked) and a code, in one mail."""
        assert ctx.link is not None and ctx.code is not None
        return _render(_SIGN_IN, ctx)

    def confirm_email_change(self, ctx: MailContext) -> RenderedMail:
        """To the new address: the link that confirms an email change."""
        assert ctx.link is not None
        return _render(_CONFIRM_EMAIL_CHANGE, ctx)

    def email_changed(self, ctx: MailContext) -> RenderedMail:
        """To the old address: the address of the account was changed."""
        return _render(_EMAIL_CHANGED, ctx)

    def email_change_requested(self, ctx: MailContext) -> RenderedMail:
        """To the old address, when a change is asked for: what is about to happen, and a link to cancel it."""
        assert ctx.link is not None
        return _render(_EMAIL_CHANGE_REQUESTED, ctx)

    def security_notice(self, ctx: MailContext, event: str) -> RenderedMail:
        """To the account's address after a credential ``event`` (a key of ``SECURITY_NOTICES``)."""
        return _render(SECURITY_NOTICES[event], ctx)

    def address_in_use(self, ctx: MailContext) -> RenderedMail:
        """To an address that already has an account, when someone signs up (or changes to) it."""
        return _render(_ADDRESS_IN_USE, ctx)
