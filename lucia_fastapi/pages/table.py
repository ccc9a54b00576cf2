"""The pages an app gets by mounting them: one row per page, each naming the actions it shows and runs. A page
whose action the app did not mount (no email feature, say) is not mounted either.

The paths of the pages that mailed links open are those ``EmailFlows.paths`` uses by default (``/verify-email``,
``/reset-password``, ``/confirm-email-change``, ``/cancel-email-change``, ``/forgot-password``), so links and pages
agree without configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote, urlencode

from starlette.requests import Request

from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.pages.site import Page, Then, wanted_next
from lucia_fastapi.web.policy import auth_request_of

LINKS: Final[Mapping[str, str]] = {
    "sign_in": "/sign-in",
    "sign_up": "/sign-up",
    "email_sign_in": "/sign-in/email",
    "second_factor": "/second-factor",
    "reauthenticate": "/reauthenticate",
    "sign_out": "/sign-out",
    "account": "/account",
    "password": "/account/password",
    "delete_account": "/account/delete",
    "change_email": "/account/email",
    "two_step": "/account/two-step",
    "totp": "/account/two-step/totp",
    "api_keys": "/account/api-keys",
    "activity": "/account/activity",
    "admin": "/admin",
    "stop_impersonating": "/admin/stop-impersonating",
    "forgot_password": "/forgot-password",
    "reset_password": "/reset-password",
    "verify_email": "/verify-email",
    "confirm_email_change": "/confirm-email-change",
    "cancel_email_change": "/cancel-email-change",
}
"""Where each page is; templates link through these names (``links.sign_in``)."""


ENTRANCES: Final = frozenset(
    LINKS[name] for name in ("sign_in", "sign_up", "sign_out", "second_factor", "email_sign_in")
)
"""The pages that start a sign-in: never a ``next``."""


def _with_notice(path: str, notice: str) -> str:
    return f"{path}?{urlencode({'notice': notice})}"


def _after_sign_in(home: str) -> Then:
    def then(answer: Mapping[str, Any], request: Request) -> str:
        wanted = wanted_next(request, ENTRANCES) or home
        if answer.get("second_factor_pending"):  # the password was right; the second step comes first
            return f"{LINKS['second_factor']}?{urlencode({'next': wanted})}"
        return wanted

    return then


def _after_reset(home: str) -> Then:
    """A reset signs the browser in (every other session ended): home, or the second step first when the account
    has only passkeys as its second factor (the reset took a code otherwise)."""

    def then(answer: Mapping[str, Any], _request: Request) -> str:
        if answer.get("second_factor_pending"):
            return f"{LINKS['second_factor']}?{urlencode({'next': home})}"
        return _with_notice(home, "password-reset")

    return then


def _to_account_or_sign_in(notice: str) -> Then:
    """To the account page when the browser carries a session, else to the sign-in page, with ``notice`` either
    way (a mailed link is often opened where nobody is signed in)."""

    def then(_answer: Mapping[str, Any], request: Request) -> str:
        signed_in = auth_request_of(request).session_id is not None
        return _with_notice(LINKS["account"] if signed_in else LINKS["sign_in"], notice)

    return then


def _to_admin_user(notice: str) -> Then:
    """Back to the account's administration page, with ``notice``."""

    def then(_answer: Mapping[str, Any], request: Request) -> str:
        return _with_notice(f"{LINKS['admin']}/users/{quote(request.path_params['user_id'], safe='')}", notice)

    return then


def _after_impersonation(_answer: Mapping[str, Any], _request: Request) -> str:
    return _with_notice(LINKS["account"], "impersonating")


def _after_stopping(answer: Mapping[str, Any], _request: Request) -> str:
    # The admin's own session back: to the administration page; it had ended meanwhile: signed out.
    return _with_notice(LINKS["admin"] if answer.get("admin_restored") else LINKS["sign_in"], "impersonation-ended")


def _admin_pages() -> list[Page]:
    admin, user = LINKS["admin"], f"{LINKS['admin']}/users/{{user_id}}"
    return [
        Page(
            admin, template="lucia/admin_users.html", title="Accounts", show=("admin:search",), needs=Assurance.RECENT
        ),
        Page(user, template="lucia/admin_user.html", title="Account", show=("admin:account",), needs=Assurance.RECENT),
        Page(f"{user}/ban", "admin:ban", then=_to_admin_user("account-banned")),
        Page(f"{user}/unban", "admin:unban", then=_to_admin_user("account-unbanned")),
        Page(f"{user}/sessions/revoke", "admin:revoke_session", then=_to_admin_user("admin-session-revoked")),
        Page(
            f"{user}/sessions/revoke-all", "admin:revoke_sessions", then=_to_admin_user("admin-signed-out-everywhere")
        ),
        Page(f"{user}/api-keys/revoke-all", "admin:revoke_api_keys", then=_to_admin_user("admin-api-keys-revoked")),
        Page(f"{user}/impersonate", "admin:impersonate", then=_after_impersonation),
        Page(LINKS["stop_impersonating"], "admin:stop_impersonating", then=_after_stopping),
    ]


def default_pages(home: str) -> list[Page]:
    """Every page, in the order they are mounted."""
    links = LINKS
    account = links["account"]
    two_step = links["two_step"]
    return [
        # Signing in and out
        Page(
            links["sign_up"], "email:sign_up", "lucia/sign_up.html", "Create an account", done="lucia/check_email.html"
        ),
        Page(links["sign_in"], "sign_in", "lucia/sign_in.html", "Sign in", ("oauth:providers",), _after_sign_in(home)),
        Page(
            links["email_sign_in"],
            "email:request_sign_in",
            "lucia/email_sign_in.html",
            "Sign in by email",
            done="lucia/email_sign_in_sent.html",
        ),
        Page(
            f"{links['email_sign_in']}/link",
            "email:sign_in_link",
            "lucia/email_sign_in.html",
            "Sign in by email",
            then=_after_sign_in(home),
        ),
        Page(
            f"{links['email_sign_in']}/code",
            "email:sign_in_code",
            "lucia/email_sign_in_sent.html",
            "Sign in by email",
            then=_after_sign_in(home),
        ),
        Page(
            links["second_factor"],
            "mfa:verify",
            "lucia/second_factor.html",
            "Two-step sign-in",
            ("mfa:second_step",),
            then=home,
            needs=Assurance.PENDING,
        ),
        Page(
            links["sign_out"],
            "sign_out",
            "lucia/sign_out.html",
            "Sign out",
            then=_with_notice(links["sign_in"], "signed-out"),
        ),
        Page(
            links["reauthenticate"],
            "reauthenticate",
            "lucia/reauthenticate.html",
            "Confirm it's you",
            ("mfa:status",),
            then=account,
            needs=Assurance.SIGNED_IN,
        ),
        # The account
        Page(
            account,
            template="lucia/account.html",
            title="Your account",
            show=("session", "sessions", "mfa:status", "oauth:accounts"),
            needs=Assurance.SIGNED_IN,
        ),
        Page(
            f"{account}/sessions/revoke-others",
            "revoke_other_sessions",
            then=_with_notice(account, "others-signed-out"),
        ),
        Page(
            f"{account}/sessions/{{session_id}}/revoke",
            "revoke_session",
            then=_with_notice(account, "device-signed-out"),
        ),
        Page(
            links["password"],
            "change_password",
            "lucia/password.html",
            "Change your password",
            then=_with_notice(account, "password-changed"),
            needs=Assurance.SIGNED_IN,
        ),
        Page(
            links["delete_account"],
            "delete_account",
            "lucia/delete_account.html",
            "Delete your account",
            then=_with_notice(links["sign_in"], "account-deleted"),
            needs=Assurance.SIGNED_IN,
        ),
        Page(f"{account}/connections/unlink", "oauth:unlink", then=_with_notice(account, "account-disconnected")),
        Page(
            links["activity"],
            template="lucia/activity.html",
            title="Recent security activity",
            show=("activity:recent",),
            needs=Assurance.SIGNED_IN,
        ),
        # API keys
        Page(
            links["api_keys"],
            "api_keys:create",
            "lucia/api_keys.html",
            "API keys",
            ("api_keys:list",),
            done="lucia/api_key_created.html",
            needs=Assurance.SIGNED_IN,
        ),
        Page(
            f"{links['api_keys']}/{{key_id}}/revoke",
            "api_keys:revoke",
            then=_with_notice(links["api_keys"], "api-key-revoked"),
        ),
        # Administration
        *_admin_pages(),
        # Email: verification, reset, change (the pages mailed links open)
        Page(
            links["verify_email"],
            "email:verify",
            "lucia/verify_email.html",
            "Verify your email address",
            then=_to_account_or_sign_in("email-verified"),
        ),
        Page(
            f"{links['verify_email']}/send", "email:send_verification", then=_with_notice(account, "verification-sent")
        ),
        Page(
            links["forgot_password"],
            "email:request_password_reset",
            "lucia/forgot_password.html",
            "Forgot your password?",
            done="lucia/check_email.html",
        ),
        Page(
            links["reset_password"],
            "email:reset_password",
            "lucia/reset_password.html",
            "Choose a new password",
            then=_after_reset(home),
        ),
        Page(
            links["change_email"],
            "email:request_email_change",
            "lucia/change_email.html",
            "Change your email address",
            done="lucia/check_email.html",
            needs=Assurance.SIGNED_IN,
        ),
        Page(
            links["confirm_email_change"],
            "email:confirm_email_change",
            "lucia/confirm_email_change.html",
            "Confirm your new email address",
            then=_to_account_or_sign_in("email-changed"),
        ),
        Page(
            links["cancel_email_change"],
            "email:cancel_email_change",
            "lucia/cancel_email_change.html",
            "Cancel the email change",
            then=_with_notice(links["sign_in"], "email-change-cancelled"),
        ),
        # Second factors
        Page(
            two_step,
            template="lucia/two_step.html",
            title="Two-step sign-in",
            show=("mfa:status",),
            needs=Assurance.SIGNED_IN,
        ),
        Page(
            links["totp"],
            "mfa:totp_confirm",
            "lucia/totp.html",
            "Set up an authenticator app",
            ("mfa:totp_enrolment",),
            done="lucia/recovery_codes.html",
            needs=Assurance.RECENT,
        ),
        Page(f"{links['totp']}/start", "mfa:totp_enrol", then=links["totp"]),
        Page(f"{links['totp']}/disable", "mfa:totp_disable", then=_with_notice(two_step, "totp-off")),
        Page(
            f"{two_step}/recovery-codes",
            "mfa:recovery_codes",
            "lucia/recovery_codes.html",
            "Recovery codes",
            done="lucia/recovery_codes.html",
            needs=Assurance.SIGNED_IN,
        ),
        Page(
            f"{two_step}/passkeys/{{credential_id}}/remove",
            "mfa:passkey_remove",
            then=_with_notice(two_step, "passkey-removed"),
        ),
    ]
