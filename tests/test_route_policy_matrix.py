"""Every route against every kind of session (issue 20): the example app over real HTTP (the library's JSON
endpoints under ``/auth``, sent by a token client; the library's HTML pages and the example's own ``/``,
``/profile``, ``/dev/outbox`` and ``/healthz``, sent by a browser), the routers the library ships
(``email_router``, ``OAuth(...).routes()``, ``handle_logout_requests``) in a small app of their own, and
``auth_router(auth, email=, mfa=, oauth=)`` with every feature on (issue 21) in another.

The route tables come from the code (``lucia_fastapi.web.policy.endpoints`` and ``route_requirement``): a route added
later without a declared requirement fails ``test_*_every_route_declares_a_requirement``, and one added with a
declaration is run by the matrix without anyone listing it (with an empty body if nobody wrote one for it below).
Each route is sent by five sessions:

- ``none``: no session;
- ``pending``: user A's session still waiting for its second factor (A has TOTP, recovery codes and a passkey);
- ``stale``: A's session that proved password and TOTP an hour ago, still alive (``ManualClock`` in the past);
- ``other``: user B's recently verified session, sent with A's identifiers (A's session digest, passkey, provider
  identity, codes) wherever the route takes one;
- ``recent``: A's session that proved password and TOTP just now;
- ``admin``: an admin's recently verified session (issue 25), sent with A's identifiers: it may act on A through the
  admin routes only; anywhere else it is one more other user, who must leave A's rows as they were;
- ``impersonated``: an admin's session *as A* (``impersonated_by``): signed in, never recent, so every route that
  needs ``RECENT`` refuses it (403 ``AUTH_IMPERSONATING``; a page shows that refusal), and a step-up refuses it too.

Users and sessions are written straight into the app's database by an ``Auth`` of this process over the same store:
new users A and B for every route, a new session for every (route, session) pair (a route may end or rotate it).
A session below the route's declared level must be refused (JSON: 401, 403 ``AUTH_SECOND_FACTOR_REQUIRED``, 403
``AUTH_REAUTHENTICATION_REQUIRED``; pages: a 303 to ``/sign-in``, ``/second-factor`` or ``/reauthenticate``, the
page asked for as its ``next``) with **every row of every table** as it was (no table is left out: a refused request
has nothing to count, rate-limit counters included); a session at or above it must not be refused by the policy;
``other`` must leave every row that names A as it was.

``tests/test_pages_attacks.py`` attacks each page (hostile input, cross-site forms) on apps of its own; here the
example is run as a whole, as it is served: every route it mounts, each at the level it declares.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pyotp
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from sqlalchemy import MetaData, event, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lucia_fastapi import (
    Auth,
    AuthMiddleware,
    KeySpec,
    LuciaError,
    PasswordHasher,
    SQLAlchemyAdapter,
    handle_logout_requests,
)
from lucia_fastapi.adapters.sqlalchemy.activity import SQLAlchemyActivityStore, define_activity_tables
from lucia_fastapi.adapters.sqlalchemy.admin import SQLAlchemyAdminStore, define_admin_tables
from lucia_fastapi.adapters.sqlalchemy.api_keys import SQLAlchemyApiKeyStore, define_api_key_tables
from lucia_fastapi.adapters.sqlalchemy.email import email_user_columns
from lucia_fastapi.adapters.sqlalchemy.mfa import SQLAlchemyMFAStore, define_mfa_tables
from lucia_fastapi.adapters.sqlalchemy.oauth import define_oauth_tables
from lucia_fastapi.adapters.sqlalchemy.rate_limits import SQLAlchemyRateLimitStore, define_rate_limit_tables
from lucia_fastapi.adapters.sqlalchemy.schema import NAMING_CONVENTION, define_auth_tables
from lucia_fastapi.adapters.sqlalchemy.tokens import SQLAlchemyTokenStore, define_token_tables
from lucia_fastapi.core.clock import system_clock
from lucia_fastapi.core.models import Session
from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.core.ratelimit import RateLimiter, SignInThrottle
from lucia_fastapi.features.activity import SecurityActivity
from lucia_fastapi.features.admin import Admin
from lucia_fastapi.features.api_keys import ApiKeys
from lucia_fastapi.features.email import OutboxEmailSender
from lucia_fastapi.features.email.flows import EmailFlows
from lucia_fastapi.features.email.router import email_router
from lucia_fastapi.features.mfa import MFA, RelyingParty, SecretCipher
from lucia_fastapi.features.oauth import OAuth, github
from lucia_fastapi.features.tokens import SingleUseTokens
from lucia_fastapi.routers import auth_router
from lucia_fastapi.stack import derive_keys
from lucia_fastapi.testing import ManualClock
from lucia_fastapi.testing.postgres import free_port
from lucia_fastapi.testing.processes import UvicornProcess
from lucia_fastapi.web.policy import endpoints, route_requirement
from tests.soft_authenticator import SoftAuthenticator
from tests.web_apps import NoCookies

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "A's long enough password"
NEW_PASSWORD = "a brand new long password"
FAST_HASHER = PasswordHasher(memory_cost=1024, time_cost=1)  # the server verifies it too: parameters are in the hash
SKIPPED_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})  # FastAPI's own pages
SKIPPED_MOUNTS = ("/static",)  # files, not endpoints
IMPLIED_METHODS = frozenset({"HEAD"})  # Starlette adds HEAD to every GET
KINDS = ("none", "pending", "stale", "other", "recent", "admin", "impersonated")
ADMIN_EMAIL = "admin-matrix@example.com"  # the example's LUCIA_EXAMPLE_ADMINS, and the routers app's rule


def is_admin(user: Any) -> bool:
    """The routers app's rule, the example's: a verified ``ADMIN_EMAIL``."""
    return user.attributes.get("email") == ADMIN_EMAIL and user.attributes.get("email_verified_at") is not None


LEVEL = {
    "none": Assurance.ANONYMOUS,
    "pending": Assurance.PENDING,
    "stale": Assurance.SIGNED_IN,
    "other": Assurance.RECENT,
    "recent": Assurance.RECENT,
    "admin": Assurance.RECENT,
    "impersonated": Assurance.SIGNED_IN,  # and never more: AUTH_IMPERSONATING where RECENT is needed
    "between": Assurance.SIGNED_IN,  # for the example, whose sensitive routes want a proof of 5 minutes at most
}
# What a refusal tells each kind of session: sign in; finish the second step; prove the strongest factor again.
EXPECTED_REFUSAL = {
    "none": "sign-in",
    "pending": "second-factor",
    "stale": "reauthenticate",
    "between": "reauthenticate",
    "impersonated": "impersonating",
}
# A's passkey is registered by this process (the ceremony checks the origin then, never again): the relying party's
# id is what matters, "localhost" as in the example served at http://localhost:<port>.
RP_ORIGIN = "http://localhost:8000"
RELYING_PARTY = RelyingParty(id="localhost", name="lucia_fastapi example", origins=[RP_ORIGIN])

# Where the code answers a refusal in another form than the policy's. Each entry is checked to still be refused with
# nothing changed, and to still deviate: once fixed, the entry fails as "fixed" and must be removed. Nothing that
# lets a session through, or changes a row, may ever be listed here. (The OAuth routes were, until their refusals
# went through the policy like every other route's.)
KNOWN_ANSWER_DEFECTS: dict[tuple[str, str, str, str], str] = {}


# The route tables --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteCase:
    path: str
    method: str
    needs: Assurance | None


def route_cases(routes: Any) -> tuple[list[RouteCase], list[str]]:
    """Every (path, method) of ``routes`` that the policy covers, and those that declare nothing."""
    cases, undeclared = [], []
    for endpoint in endpoints(routes):
        if endpoint.path in SKIPPED_PATHS or endpoint.path.startswith(SKIPPED_MOUNTS):
            continue
        if not endpoint.methods:
            undeclared.append(f"{endpoint.path} (a mount that is not a router)")
        for method in sorted(endpoint.methods - IMPLIED_METHODS):
            needs = route_requirement(endpoint.route, method)
            if needs is None:
                undeclared.append(f"{method} {endpoint.path}")
            cases.append(RouteCase(endpoint.path, method, needs))
    return cases, undeclared


# The example's table is read in a process of its own, with the server's environment: the example reads its
# configuration when it is first imported, so importing it here would depend on what this process did before.
# Besides the routes, what the library says the example mounted: every action of its routers under their prefix, and
# every page of the page table whose action it has (as ``page_routes`` mounts them), with the level each declares.
EXAMPLE_TABLE = """
import json, sys
from examples.app.main import app, pages
from lucia_fastapi.pages import page_table
from tests.test_route_policy_matrix import route_cases
cases, undeclared = route_cases(app.routes)
rows = [[c.path, c.method, c.needs.name if c.needs is not None else None] for c in cases]
site = pages.site
library = [[site.api_prefix + a.path, a.method, a.needs.name] for a in site.actions.values()]
for page in page_table(list(site.actions.values()), home=pages.home):
    if page.submit is None and not any(site.has(name) for name in page.show):
        continue
    if page.template is not None and (page.submit is None or site.has(page.submit)):
        library.append([page.path, "GET", page.needs.name])
    if page.submit is not None and site.has(page.submit):
        library.append([page.path, "POST", site.actions[page.submit].needs.name])
json.dump({"cases": rows, "undeclared": undeclared, "library": library}, sys.stdout)
"""


# Schema and snapshots ----------------------------------------------------------------------------------------------


class Schema:
    """The tables of the example (and of the library app below), defined the way the example defines them."""

    def __init__(self) -> None:
        self.metadata = MetaData(naming_convention=NAMING_CONVENTION)
        self.auth = define_auth_tables(self.metadata, user_columns=email_user_columns())
        self.tokens = define_token_tables(self.metadata)
        self.mfa = define_mfa_tables(self.metadata)
        self.rate_limits = define_rate_limit_tables(self.metadata)
        self.api_keys = define_api_key_tables(self.metadata)
        self.activity = define_activity_tables(self.metadata)
        self.admin = define_admin_tables(self.metadata)
        define_oauth_tables(self.metadata)  # provider tokens: the example's AuthStack defines the table too


Rows = dict[str, list[tuple[str, ...]]]


class Snapshots:
    """Every row of every table of one database, sorted (reflected: the app's own tables too)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.tables: MetaData | None = None

    async def __call__(self) -> Rows:
        def read(connection: Any) -> Rows:
            if self.tables is None:  # reflected once: the app created every table at startup
                self.tables = MetaData()
                self.tables.reflect(connection)
            return {
                name: sorted(tuple(repr(value) for value in row) for row in connection.execute(select(table)))
                for name, table in sorted(self.tables.tables.items())
                # The security activity log is not account state: it is written in the background a moment after
                # the request that caused it, and a refused request may rightly be recorded (a wrong code).
                if name != "auth_security_event"
            }

        async with self.engine.connect() as connection:
            return await connection.run_sync(read)


def rows_naming(tables: Rows, user_id: str) -> Rows:
    """The rows that name ``user_id`` anywhere: its user, keys, sessions, tokens, factors."""
    return {name: [row for row in rows if any(user_id in value for value in row)] for name, rows in tables.items()}


def changes(before: Rows, after: Rows) -> dict[str, Any]:
    found = {}
    for name in sorted(set(before) | set(after)):
        old, new = set(before.get(name, [])), set(after.get(name, []))
        if old != new:
            found[name] = {"gone": sorted(old - new), "new": sorted(new - old)}
    return found


def engine_on(path: Path) -> AsyncEngine:
    """This process's engine on an app's SQLite file; its own writes skip fsync (the app's do not)."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")

    @event.listens_for(engine.sync_engine, "connect")
    def no_fsync(connection: Any, _record: Any) -> None:
        connection.execute("PRAGMA synchronous=OFF")

    return engine


# Accounts and sessions, written with the library itself ----------------------------------------------------------


@dataclass
class Account:
    user_id: str
    email: str
    totp_secret: str = ""
    recovery_codes: list[str] = field(default_factory=list)
    passkey_id: str = ""
    github_subject: str = ""
    api_key_id: str = ""
    tokens: dict[str, str] = field(default_factory=dict)


class Accounts:
    """Users and sessions in an app's store, made by an ``Auth`` of this process over it (``ManualClock``: a
    stale session is one made an hour ago)."""

    def __init__(self, engine: AsyncEngine, schema: Schema, totp_key: str) -> None:
        self.clock = ManualClock()
        self.auth: Auth[Any] = Auth(
            SQLAlchemyAdapter(engine, schema.auth), clock=self.clock, password_hasher=FAST_HASHER
        )
        self.mfa = MFA(
            self.auth, SQLAlchemyMFAStore(engine, schema.mfa), totp_keys=[totp_key], relying_party=RELYING_PARTY
        )
        self.api_keys: ApiKeys[Any] = ApiKeys(self.auth, SQLAlchemyApiKeyStore(engine, schema.api_keys))
        self.flows = EmailFlows(  # for its token purposes: the same as the apps'
            self.auth,
            tokens=SingleUseTokens(SQLAlchemyTokenStore(engine, schema.tokens), clock=self.clock),
            sender=OutboxEmailSender(),
            base_url="http://127.0.0.1:8000",
        )

    def now(self) -> None:
        self.clock.now_ms = system_clock()

    async def new_user(self, label: str) -> Account:
        self.now()
        email = f"{label}-{secrets.token_hex(5)}@example.com"
        user = await self.auth.create_user(
            key=KeySpec("email", email, PASSWORD), attributes={"email": email, "email_verified_at": None}
        )
        return Account(user.user_id, email)

    async def user_a(self) -> Account:
        """A: password, TOTP (so that a session can be pending), recovery codes, a passkey, a GitHub identity."""
        account = await self.new_user("a")
        enrolment = await self.mfa.totp.begin_enrolment(account.user_id, account.email)
        account.totp_secret = enrolment.secret
        # Confirmed with the previous step's code: the current one stays usable by the requests.
        confirm = pyotp.TOTP(enrolment.secret).at(self.clock() // 1000 - 30)
        account.recovery_codes = await self.mfa.totp.confirm_enrolment(account.user_id, confirm) or []
        session = await self.session(account, "recent")
        ceremony = await self.mfa.passkeys.begin_registration(session, account.email)
        device = SoftAuthenticator(RP_ORIGIN)
        passkey = await self.mfa.passkeys.finish_registration(
            session, ceremony.token, device.create(ceremony.options_json), "Laptop"
        )
        account.passkey_id = passkey.credential_id
        account.api_key_id = (await self.api_keys.create(session, name="A's script")).key.id
        account.github_subject = str(10**8 + secrets.randbelow(10**8))
        await self.auth.create_key(account.user_id, KeySpec("github", account.github_subject))
        return account

    async def admin(self) -> Account:
        """The admin (``ADMIN_EMAIL``, verified): made once per database, again if a route deleted it."""
        self.now()
        try:
            user_id = (await self.auth.get_key("email", ADMIN_EMAIL)).user_id
            # A route the admin sent may have changed its password: the next ones confirm with PASSWORD again.
            await self.auth.update_key_password("email", ADMIN_EMAIL, PASSWORD)
        except LuciaError:
            attributes = {"email": ADMIN_EMAIL, "email_verified_at": self.clock()}
            user_id = (
                await self.auth.create_user(key=KeySpec("email", ADMIN_EMAIL, PASSWORD), attributes=attributes)
            ).user_id
        return Account(user_id, ADMIN_EMAIL)

    async def session(self, account: Account, kind: str) -> Session:
        self.now()
        if kind == "impersonated":  # A's session started by the admin
            admin = await self.admin()
            return await self.auth.create_session(account.user_id, factors=(), impersonated_by=admin.user_id)
        if kind == "pending":
            return await self.auth.create_session(account.user_id, factors=("password",), second_factor_pending=True)
        factors: tuple[Any, ...] = ("password", "totp") if account.totp_secret else ("password",)
        if kind == "stale":  # proved an hour ago; alive for the whole active period
            self.clock.now_ms -= 3_600_000
        elif kind == "between":  # proved 7 minutes ago: past the example's window (5), within the policy's (10)
            self.clock.now_ms -= 7 * 60_000
        try:
            return await self.auth.create_session(account.user_id, factors=factors)
        finally:
            self.now()

    async def issue(self, account: Account, names: tuple[str, ...]) -> None:
        """A's outstanding links and codes a route takes, issued as the flows issue them (same purposes)."""
        flows = self.flows
        purposes = {
            "verify": (flows.VERIFY, account.email),
            "reset": (flows.RESET, account.email),
            "change": (flows.CHANGE, f"moved-{account.email}"),
            "cancel": (flows.CANCEL_CHANGE, account.email),
        }
        for name in names:
            if name not in account.tokens:
                purpose, value = purposes[name]
                account.tokens[name] = (await flows.tokens.issue(account.user_id, purpose, value=value)).token


# Requests ----------------------------------------------------------------------------------------------------------


@dataclass
class Context:
    kind: str
    a: Account
    b: Account
    bystander: Session  # another of A's sessions (another device): its digest is what routes that revoke name

    @property
    def totp(self) -> str:
        return pyotp.TOTP(self.a.totp_secret).at(system_clock() // 1000)

    def link(self, name: str) -> str:
        # A link token is a capability by itself (whoever holds it may act): B (or the admin) is not given A's.
        return "" if self.kind in ("other", "admin") else self.a.tokens.get(name, "")

    @property
    def sign_in_as(self) -> Account:
        # A password is a capability too: B (or the admin) signs in as B.
        return self.b if self.kind in ("other", "admin") else self.a


TOKENS_OF_ROUTE = {  # the links and codes of A a route takes
    "/verify-email": ("verify",),
    "/reset-password": ("reset",),
    "/confirm-email-change": ("change",),
    "/cancel-email-change": ("cancel",),
    "/auth/email/verification/verify": ("verify",),
    "/auth/email/password-reset": ("reset",),
    "/auth/email/email-change/confirm": ("change",),
    "/auth/email/email-change/cancel": ("cancel",),
}


def fresh_address(label: str) -> str:
    return f"{label}-{secrets.token_hex(4)}@example.com"


def example_bodies(ctx: Context) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], Any]]:
    """The example's forms (its pages run the same actions as its JSON endpoints under ``/auth``, whose bodies are
    the routers'), filled with A's values (B's password for B's sign-in): a route that let the session through
    would act on A."""
    a = ctx.a
    forms = {
        ("POST", "/sign-up"): {"email": fresh_address("new"), "password": PASSWORD},
        ("POST", "/sign-in"): {"email": ctx.sign_in_as.email, "password": PASSWORD},
        ("POST", "/second-factor"): {"code": ctx.totp},
        ("POST", "/reauthenticate"): {"code": ctx.totp},
        ("POST", "/account/password"): {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        ("POST", "/account/delete"): {"password": PASSWORD},
        ("POST", "/account/email"): {"email": fresh_address("moved"), "password": PASSWORD},
        ("POST", "/account/api-keys"): {"name": "CI", "scopes": "profile:read"},
        ("POST", "/account/connections/unlink"): {"provider": "github", "subject": a.github_subject},
        ("POST", "/account/connections/github/connect"): {"next": "/account"},
        ("POST", "/account/two-step/totp"): {"code": ctx.totp},
        ("POST", "/verify-email"): {"token": ctx.link("verify")},
        ("POST", "/forgot-password"): {"email": fresh_address("nobody")},  # no account: no mail written later
        ("POST", "/reset-password"): {
            "token": ctx.link("reset"),
            "password": NEW_PASSWORD,
            "second_factor_code": ctx.totp,
        },
        ("POST", "/confirm-email-change"): {"token": ctx.link("change")},
        ("POST", "/cancel-email-change"): {"token": ctx.link("cancel")},
        ("POST", "/admin/users/{user_id}/ban"): {"reason": "the route matrix"},
        ("POST", "/admin/users/{user_id}/sessions/revoke"): {"session": ctx.bystander.digest},
    }
    _forms, bodies = routers_bodies(ctx)
    return forms, bodies


def library_bodies(ctx: Context) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], Any]]:
    a = ctx.a
    forms = {("POST", "/oauth/github/start"): {"next": "/"}}
    bodies = {
        ("POST", "/auth/email/sign-up"): {"email": fresh_address("new"), "password": PASSWORD},
        ("POST", "/auth/email/verification/send"): {"code": True},
        ("POST", "/auth/email/verification/verify"): {"token": ctx.link("verify")},
        ("POST", "/auth/email/password-reset/request"): {"email": fresh_address("nobody")},
        ("POST", "/auth/email/password-reset"): {
            "token": ctx.link("reset"),
            "password": NEW_PASSWORD,
            "second_factor_code": ctx.totp,
        },
        # With the password: a stale session of an account with TOTP must not get through with it (issue 20, #4).
        ("POST", "/auth/email/email-change/request"): {"email": fresh_address("moved"), "password": PASSWORD},
        ("POST", "/auth/email/email-change/confirm"): {"token": ctx.link("change")},
        ("POST", "/auth/email/email-change/cancel"): {"token": ctx.link("cancel")},
        ("POST", "/oauth/unlink"): {"provider": "github", "subject": a.github_subject},
    }
    return forms, bodies


BodiesOf = Callable[[Context], tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], Any]]]
BODIES_OF_APP: dict[str, BodiesOf] = {"example": example_bodies, "library": library_bodies}  # forms, JSON bodies


def request_of(case: RouteCase, ctx: Context, app: str, *, page: bool) -> dict[str, Any]:
    """What a client of this route sends: its fields (a route nobody wrote fields for gets an empty body)."""
    forms, bodies = BODIES_OF_APP[app](ctx)
    # A's identifiers in the path: another device's session (by its digest), A's passkey.
    path = case.path.replace("{digest}", ctx.bystander.digest).replace("{session_id}", ctx.bystander.digest)
    path = path.replace("{credential_id}", ctx.a.passkey_id).replace("{name}", "lucia.css")
    path = path.replace("{key_id}", ctx.a.api_key_id).replace("{user_id}", quote(ctx.a.user_id, safe=""))
    token_names = TOKENS_OF_ROUTE.get(case.path, ())
    if case.method == "GET" and token_names:
        path += f"?token={quote(ctx.link(token_names[0]))}"
    request: dict[str, Any] = {"method": case.method, "url": path}
    key = (case.method, case.path)
    if key in bodies:
        request["json"] = bodies[key]
    elif key in forms:
        request["data"] = forms[key]
    elif case.method != "GET":
        request["data" if page else "json"] = {}
    return request


POLICY_PAGES = {"/sign-in": "sign-in", "/second-factor": "second-factor", "/reauthenticate": "reauthenticate"}
SIGN_IN_NOTICES = ("sign-in-to-continue", "sign-in-again")


def refusal_of(response: httpx.Response, *, page: bool) -> str | None:
    """Which policy refusal an answer is, if it is one. Pages: a 303 to sign in (with the notice that says why), to
    the second step or to "confirm it's you", setting no session (a sign-in that goes on to the second step sets
    one). JSON: 401, or 403 with the policy's code. Anything else, an error page included, is another answer
    (``None``, or ``page <status>`` for a 401/403 page, which the policy does not expect)."""
    status = response.status_code
    if status in (302, 303, 307):
        location = urlsplit(response.headers["location"])
        refusal = POLICY_PAGES.get(location.path) if not location.netloc else None
        if refusal == "sign-in" and parse_qs(location.query).get("notice", [""])[0] not in SIGN_IN_NOTICES:
            return None
        if refusal is not None and "set-cookie" in response.headers:
            return None
        return refusal
    if page and response.headers.get("content-type", "").startswith("text/html"):
        if status == 403 and 'data-code="AUTH_IMPERSONATING"' in response.text:
            return "impersonating"  # shown on the page: there is no page to send an impersonation to
        if status == 403 and 'data-code="ADMIN_REQUIRED"' in response.text:
            return None  # the admin feature's refusal of a non-admin, past the policy (tests/test_admin.py)
        return f"page {status}" if status in (401, 403) else None
    code = ""
    if response.headers.get("content-type", "").startswith("application/json") and response.content:
        body = response.json()
        detail = body.get("detail") if isinstance(body, dict) else None
        code = detail.get("code", "") if isinstance(detail, dict) else ""
    if status == 401:
        return "sign-in"
    if code == "AUTH_SECOND_FACTOR_REQUIRED":
        return "second-factor"
    if code == "AUTH_REAUTHENTICATION_REQUIRED":
        return "reauthenticate"
    if code == "AUTH_IMPERSONATING":
        return "impersonating"
    return None


def comes_back_to(response: httpx.Response) -> str:
    """The ``next`` of a page's refusal: where the browser goes once it signed in or proved itself again."""
    return parse_qs(urlsplit(response.headers["location"]).query).get("next", [""])[0]


def expected_refusal(case: RouteCase, kind: str) -> str | None:
    assert case.needs is not None
    if case.needs <= LEVEL[kind]:
        return None
    return EXPECTED_REFUSAL[kind]


def describe(response: httpx.Response) -> str:
    if "location" in response.headers:
        return f"{response.status_code} -> {response.headers['location']}"
    text = response.text
    if "<title>" in text:
        text = text.split("<title>", 1)[1].split("</title>", 1)[0]
    return f"{response.status_code} {text[:200]}"


# Running the matrix ------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """An app under test: how to reach it, its database, an ``Accounts`` over that database."""

    name: str  # "example", "library" or "routers"
    client: httpx.AsyncClient
    origin: str
    snapshots: Snapshots
    accounts: Accounts
    users: dict[tuple[str, str], tuple[Account, Account]]  # per route, kept from one kind of session to the next
    cases: list[RouteCase]

    def is_page(self, case: RouteCase) -> bool:
        """Whether a browser asks for this route: the example's pages and its own routes, not its JSON API (the
        library's under ``/auth``, the example's own under ``/api``)."""
        return self.name == "example" and not case.path.startswith(("/auth/", "/api/"))

    def token_client(self, case: RouteCase) -> bool:
        """Whether a token client (no ``Origin``, no cookie: ``Authorization: Bearer``) sends this route: the
        example's JSON API (the routers' apps are sent by a browser, cookie and ``Origin``)."""
        return self.name == "example" and case.path.startswith(("/auth/", "/api/"))


async def run_case(target: Target, case: RouteCase, kind: str) -> list[str]:
    """One route sent by one kind of session; what went wrong, in words (nothing: as the policy says)."""
    if case.needs is None:
        return [f"{case.method} {case.path}: declares no requirement, so nobody can say what it should answer"]
    accounts = target.accounts
    key = (case.method, case.path)
    kept = target.users.get(key)
    # Kept from one kind of session to the next, unless a kind that may act (a recent session) deleted one of them.
    if kept is None or any([await accounts.auth.adapter.get_user(user.user_id) is None for user in kept]):
        target.users[key] = (await accounts.user_a(), await accounts.new_user("b"))
    a, b = target.users[key]
    await accounts.issue(a, TOKENS_OF_ROUTE.get(case.path, ()))
    ctx = Context(kind, a, b, bystander=await accounts.session(a, "recent"))
    acting = None
    if kind == "other":
        acting = await accounts.session(b, "recent")
    elif kind == "admin":
        acting = await accounts.session(await accounts.admin(), "recent")
    elif kind != "none":
        acting = await accounts.session(a, kind)
    page = target.is_page(case)
    headers = {"accept": "text/html" if page else "application/json"}
    if target.token_client(case):
        if acting is not None:
            headers["authorization"] = f"Bearer {acting.session_id}"
    else:
        headers["origin"] = target.origin
        if acting is not None:
            headers["cookie"] = f"auth_session={acting.session_id}"
    wanted = expected_refusal(case, kind)
    watched = wanted is not None or kind in ("other", "admin")
    before = await target.snapshots() if watched else {}
    sent = request_of(case, ctx, target.name, page=page)
    response = await target.client.request(**sent, headers=headers)
    after = await target.snapshots() if watched else {}
    got = refusal_of(response, page=page)
    where = f"{case.method} {case.path} [{kind} session; the route needs {case.needs.name}]"
    problems = []
    if kind == "impersonated" and wanted is None and got == "impersonating":
        got = None  # a step-up or second step refuses an impersonation before it checks anything: never unsafe
    if got != wanted:
        if wanted is None:
            problems.append(f"{where}: refused ({got}) though the session is enough: {describe(response)}")
        elif got is None:
            problems.append(f"{where}: NOT REFUSED (expected {wanted}): {describe(response)}")
        else:
            problems.append(f"{where}: refused as {got!r}, expected {wanted!r}: {describe(response)}")
    elif (
        got not in (None, "impersonating") and page and case.method == "GET" and comes_back_to(response) != sent["url"]
    ):
        problems.append(f"{where}: refused, but would not come back to the page afterwards: {describe(response)}")
    if wanted is not None and before != after:
        problems.append(f"{where}: the database changed, the request being one to refuse: {changes(before, after)}")
    if kind == "other" or (kind == "admin" and "/admin/" not in case.path):
        moved = changes(rows_naming(before, a.user_id), rows_naming(after, a.user_id))
        if moved:
            problems.append(f"{where}: {'B' if kind == 'other' else 'the admin'}'s session changed A's rows: {moved}")
    return problems


async def run_matrix(target: Target, cases: list[RouteCase], kind: str) -> None:
    """Every route of ``cases`` sent by ``kind``; fails with every problem found, not only the first."""
    problems: list[str] = []
    for case in cases:
        found = await run_case(target, case, kind)
        defect = (target.name, case.method, case.path, kind)
        if defect in KNOWN_ANSWER_DEFECTS:
            if found and all("refused as" in problem for problem in found):
                continue  # refused, nothing changed, in the known other form
            if not found:
                problems.append(f"{defect}: answers as the policy says now: remove it from KNOWN_ANSWER_DEFECTS")
        problems += found
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# The example app over HTTP -----------------------------------------------------------------------------------------

# The example's own routes, besides the library's: its home (a redirect), its profile page, the development outbox,
# the health check, and the pages' static files.
EXAMPLE_OWN = {
    ("/", "GET"): Assurance.ANONYMOUS,
    ("/profile", "GET"): Assurance.SIGNED_IN,
    ("/dev/outbox", "GET"): Assurance.ANONYMOUS,
    ("/healthz", "GET"): Assurance.ANONYMOUS,
    ("/lucia-static/{name}", "GET"): Assurance.ANONYMOUS,
    ("/api/profile", "GET"): Assurance.SIGNED_IN,  # or an API key with its scope: tests/test_api_keys_routes.py
}


@dataclass
class ExampleServer:
    url: str
    database: Path
    totp_key: str
    cases: list[RouteCase]
    undeclared: list[str]
    library: dict[tuple[str, str], Assurance]  # what the library's actions and page table say it mounted
    users: dict[tuple[str, str], tuple[Account, Account]] = field(default_factory=dict)


def example_environment(workdir: Path, url: str, secret: str) -> dict[str, str]:
    unset = (
        "DATABASE_URL",
        "LUCIA_ENV",
        "LUCIA_EXAMPLE_REAUTH_SECONDS",  # the example as shipped: a proof counts for 5 minutes
        "REDIS_URL",
        "SMTP_HOST",
        "OAUTH_OIDC_ISSUER",
        "GOOGLE_CLIENT_ID",
    )
    return {
        **{key: value for key, value in os.environ.items() if key not in unset},
        "PYTHONPATH": str(ROOT),
        "LUCIA_ENV": "DEV",
        "APP_BASE_URL": url,  # the trusted origin and the passkeys' relying party (localhost) follow it
        "DATABASE_URL": f"sqlite:///{workdir / 'example.sqlite3'}",
        "OUTBOX_DIR": str(workdir / "outbox"),
        "LUCIA_SECRET_KEYS": secret,  # this process derives the same TOTP key from it, to enrol A
        "GITHUB_CLIENT_ID": "route-matrix",  # the GitHub preset: the OAuth routes exist; nothing is fetched
        "GITHUB_CLIENT_SECRET": "route-matrix",
        "LUCIA_EXAMPLE_ADMINS": ADMIN_EMAIL,  # the admin kind's address, verified by Accounts.admin
    }


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleServer]:
    workdir = tmp_path_factory.mktemp("route-matrix")
    secret = secrets.token_urlsafe(32)
    totp_key = derive_keys([secret], "lucia_fastapi totp secrets")[0]  # as AuthStack derives it
    port = free_port()
    url = f"http://localhost:{port}"
    env = example_environment(workdir, url, secret)
    table = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", EXAMPLE_TABLE], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )
    assert table.returncode == 0, table.stderr
    read = json.loads(table.stdout)
    cases = [RouteCase(path, method, Assurance[needs] if needs else None) for path, method, needs in read["cases"]]
    library = {(path, method): Assurance[needs] for path, method, needs in read["library"]}
    server = UvicornProcess("examples.app.main:app", cwd=workdir, env=env, port=port)
    try:
        yield ExampleServer(url, workdir / "example.sqlite3", totp_key, cases, read["undeclared"], library)
    finally:
        server.stop()
    assert "Traceback" not in server.log_text(), server.log_text()[-3000:]


@pytest.fixture
async def example_target(example: ExampleServer) -> AsyncIterator[Target]:
    engine = engine_on(example.database)
    accounts = Accounts(engine, Schema(), example.totp_key)
    async with httpx.AsyncClient(base_url=example.url, timeout=30, cookies=NoCookies()) as client:
        yield Target("example", client, example.url, Snapshots(engine), accounts, example.users, example.cases)
    await engine.dispose()


def test_example_every_route_declares_a_requirement(example: ExampleServer) -> None:
    """Every route the example mounts declares a level, and the table is the whole app: the library's JSON
    endpoints under ``/auth`` and its pages, each at the level its action or page declares, and the example's own
    routes, nothing else (so the matrix below runs every one of them)."""
    assert example.undeclared == [], f"routes of the example app that declare no requirement: {example.undeclared}"
    mounted = {(case.path, case.method): case.needs for case in example.cases}
    assert len(mounted) == len(example.cases), "a (path, method) routed twice"
    wanted = {**example.library, **EXAMPLE_OWN}
    differ = {key: (mounted.get(key), wanted.get(key)) for key in mounted.keys() | wanted.keys()}
    assert {key: levels for key, levels in differ.items() if levels[0] != levels[1]} == {}, "(mounted, declared)"
    # What this matrix was written for is there: the second step, "confirm it's you", the sensitive forms, the API.
    assert {
        ("/second-factor", "POST"),
        ("/reauthenticate", "POST"),
        ("/account/email", "POST"),
        ("/account/delete", "POST"),
        ("/account/sessions/{session_id}/revoke", "POST"),
        ("/account/connections/github/connect", "POST"),
        ("/auth/sign-in", "POST"),
        ("/auth/sessions/{session_id}", "DELETE"),
        ("/auth/oauth/github/start", "GET"),
        ("/auth/oauth/unlink", "POST"),
    } <= mounted.keys()
    assert len(example.cases) >= 80


@pytest.mark.parametrize("kind", KINDS)
async def test_example_every_route_against(example_target: Target, kind: str) -> None:
    await run_matrix(example_target, example_target.cases, kind)


async def test_example_one_window_for_every_sensitive_route(example_target: Target) -> None:
    """A session whose strongest factor was proven 7 minutes ago is stale for the example (its sensitive routes
    want 5 minutes at most, ``LUCIA_EXAMPLE_REAUTH_SECONDS``): every route that needs ``RECENT`` refuses it alike."""
    await run_matrix(example_target, example_target.cases, "between")


# The library's routers in an app of their own ---------------------------------------------------------------------


LIBRARY_ORIGIN = "http://testserver"


@dataclass
class LibraryApp:
    database: Path
    totp_key: str = field(default_factory=SecretCipher.generate_key)
    secret: bytes = field(default_factory=Fernet.generate_key)
    users: dict[tuple[str, str], tuple[Account, Account]] = field(default_factory=dict)

    def build(self, engine: AsyncEngine, schema: Schema) -> FastAPI:
        """``email_router(flows)`` at ``/auth/email``, ``OAuth(...).routes()`` at ``/oauth``, and
        ``handle_logout_requests`` at ``/logout``, with every store in the one SQLite database."""
        limits = SQLAlchemyRateLimitStore(engine, schema.rate_limits)
        auth: Auth[Any] = Auth(SQLAlchemyAdapter(engine, schema.auth), sign_in_throttle=SignInThrottle(store=limits))
        MFA(auth, SQLAlchemyMFAStore(engine, schema.mfa), totp_keys=[self.totp_key], relying_party=RELYING_PARTY)
        limiter = RateLimiter(limits)
        flows = EmailFlows(
            auth,
            tokens=SingleUseTokens(SQLAlchemyTokenStore(engine, schema.tokens), rate_limiter=limiter),
            sender=OutboxEmailSender(),
            base_url=LIBRARY_ORIGIN,
            rate_limiter=limiter,
        )

        def no_network() -> httpx.AsyncClient:  # the matrix never reaches a provider
            return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(599)))

        oauth = OAuth(
            auth,
            providers=[
                github(client_id="c", client_secret="s", redirect_uri=f"{LIBRARY_ORIGIN}/oauth/github/callback")
            ],
            secret_keys=[self.secret],
            rate_limiter=limiter,
            http_client=no_network,
        )
        app = FastAPI()
        app.add_middleware(AuthMiddleware, auth=auth)
        app.mount("/auth/email", email_router(flows))
        app.router.routes.extend(oauth.routes(prefix="/oauth"))
        app.add_route("/logout", handle_logout_requests(auth), methods=["POST"])
        return app


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> LibraryApp:
    return LibraryApp(tmp_path_factory.mktemp("library-matrix") / "library.sqlite3")


@pytest.fixture
async def library_target(library: LibraryApp) -> AsyncIterator[Target]:
    engine = engine_on(library.database)
    schema = Schema()
    async with engine.begin() as connection:
        await connection.run_sync(schema.metadata.create_all)
    app = library.build(create_async_engine(f"sqlite+aiosqlite:///{library.database}"), schema)
    accounts = Accounts(engine, schema, library.totp_key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=LIBRARY_ORIGIN, cookies=NoCookies()) as client:
        cases, _ = route_cases(app.routes)
        yield Target("library", client, LIBRARY_ORIGIN, Snapshots(engine), accounts, library.users, cases)
    await engine.dispose()


def library_routes() -> Any:
    return LibraryApp(Path("unused.sqlite3")).build(create_async_engine("sqlite+aiosqlite://"), Schema()).routes


def test_library_every_route_declares_a_requirement() -> None:
    cases, undeclared = route_cases(library_routes())
    assert undeclared == [], f"routes of the library's routers that declare no requirement: {undeclared}"
    assert {(case.method, case.path) for case in cases} >= {
        ("POST", "/auth/email/email-change/request"),
        ("POST", "/auth/email/verification/send"),
        ("GET", "/oauth/github/start"),
        ("POST", "/oauth/github/start"),
        ("GET", "/oauth/github/callback"),
        ("POST", "/oauth/unlink"),
        ("POST", "/logout"),
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_library_every_route_against(library_target: Target, kind: str) -> None:
    await run_matrix(library_target, library_target.cases, kind)


# The routers: every feature mounted in one call --------------------------------------------------------------------


@dataclass
class Features:
    """Every feature of the library on one SQL database: what ``auth_router`` / ``auth_routes`` take, and the
    outbox the email flows write to."""

    auth: Auth[Any]
    email: EmailFlows
    mfa: MFA
    oauth: OAuth
    outbox: OutboxEmailSender
    api_keys: ApiKeys[Any]
    activity: SecurityActivity
    admin: Admin[Any]

    def router_options(self) -> dict[str, Any]:
        """``auth_router(features.auth, **features.router_options())``: every feature turned on."""
        return {
            "email": self.email,
            "mfa": self.mfa,
            "oauth": self.oauth,
            "api_keys": self.api_keys,
            "activity": self.activity,
            "admin": self.admin,
        }


def every_feature(
    engine: AsyncEngine,
    schema: Schema,
    *,
    totp_key: str,
    secret: bytes,
    origin: str,
    prefix: str = "/auth",
    password_hasher: PasswordHasher = FAST_HASHER,
) -> Features:
    """Auth, email flows, MFA and OAuth (the GitHub preset, never reached: its calls answer 599) with every store
    and rate-limit counter in ``engine``'s database (so that a snapshot of its tables sees all they keep) and the
    MFA of ``Accounts`` (same TOTP key, same relying party), for the routers under ``prefix``."""
    limits = SQLAlchemyRateLimitStore(engine, schema.rate_limits)
    limiter = RateLimiter(limits)
    auth: Auth[Any] = Auth(
        SQLAlchemyAdapter(engine, schema.auth),
        sign_in_throttle=SignInThrottle(store=limits),
        password_hasher=password_hasher,
    )
    mfa = MFA(
        auth,
        SQLAlchemyMFAStore(engine, schema.mfa),
        totp_keys=[totp_key],
        relying_party=RELYING_PARTY,
        rate_limiter=limiter,
    )
    outbox = OutboxEmailSender(keep=100_000)  # every mail kept: tests count them
    email = EmailFlows(
        auth,
        tokens=SingleUseTokens(SQLAlchemyTokenStore(engine, schema.tokens), rate_limiter=limiter),
        sender=outbox,
        base_url=origin,
        rate_limiter=limiter,
    )

    def no_network() -> httpx.AsyncClient:  # attacks never get as far as a provider
        return httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(599)))

    oauth = OAuth(
        auth,
        providers=[github(client_id="c", client_secret="s", redirect_uri=f"{origin}{prefix}/oauth/github/callback")],
        secret_keys=[secret],
        rate_limiter=limiter,
        http_client=no_network,
    )
    api_keys: ApiKeys[Any] = ApiKeys(auth, SQLAlchemyApiKeyStore(engine, schema.api_keys), rate_limiter=limiter)
    activity = SecurityActivity(auth, SQLAlchemyActivityStore(engine, schema.activity))
    admin: Admin[Any] = Admin(
        auth, SQLAlchemyAdminStore(engine, schema.admin), is_admin=is_admin, api_keys=api_keys, activity=activity
    )
    return Features(auth, email, mfa, oauth, outbox, api_keys, activity, admin)


@dataclass
class RoutersApp:
    """``auth_router(auth, email=, mfa=, oauth=)`` on FastAPI, in the one SQLite database."""

    database: Path
    totp_key: str = field(default_factory=SecretCipher.generate_key)
    secret: bytes = field(default_factory=Fernet.generate_key)
    users: dict[tuple[str, str], tuple[Account, Account]] = field(default_factory=dict)

    def build(self, engine: AsyncEngine, schema: Schema) -> FastAPI:
        features = every_feature(engine, schema, totp_key=self.totp_key, secret=self.secret, origin=LIBRARY_ORIGIN)
        app = FastAPI()
        app.add_middleware(AuthMiddleware, auth=features.auth)
        app.include_router(auth_router(features.auth, **features.router_options()))
        return app


# The links and codes of A the routers' routes take (under the default prefix).
TOKENS_OF_ROUTE.update(
    {
        "/auth/verification/verify": ("verify",),
        "/auth/password-reset": ("reset",),
        "/auth/email-change/confirm": ("change",),
        "/auth/email-change/cancel": ("cancel",),
    }
)


def routers_bodies(ctx: Context) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], Any]]:
    """The routers' JSON bodies, filled with A's values (B's password for B's sign-in): a route that let the
    session through would act on A."""
    a = ctx.a
    bodies = {
        ("POST", "/auth/sign-in"): {"email": ctx.sign_in_as.email, "password": PASSWORD},
        ("POST", "/auth/password"): {"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        ("POST", "/auth/reauthenticate"): {"code": ctx.totp},
        ("POST", "/auth/account/delete"): {"password": PASSWORD},
        ("POST", "/auth/sign-up"): {"email": fresh_address("new"), "password": PASSWORD},
        ("POST", "/auth/verification/send"): {"code": True},
        ("POST", "/auth/verification/verify"): {"token": ctx.link("verify")},
        ("POST", "/auth/password-reset/request"): {"email": fresh_address("nobody")},
        ("POST", "/auth/password-reset"): {
            "token": ctx.link("reset"),
            "password": NEW_PASSWORD,
            "second_factor_code": ctx.totp,
        },
        ("POST", "/auth/email-change/request"): {"email": fresh_address("moved"), "password": PASSWORD},
        ("POST", "/auth/email-change/confirm"): {"token": ctx.link("change")},
        ("POST", "/auth/email-change/cancel"): {"token": ctx.link("cancel")},
        ("POST", "/auth/mfa/verify"): {"code": ctx.totp},
        ("POST", "/auth/mfa/totp/confirm"): {"code": ctx.totp},
        ("POST", "/auth/mfa/verify/passkey"): {"credential": {"id": a.passkey_id}},
        ("POST", "/auth/sign-in/passkey"): {"credential": {"id": a.passkey_id}},
        ("POST", "/auth/mfa/passkeys"): {"credential": {"id": a.passkey_id}, "name": "Another"},
        ("POST", "/auth/mfa/passkeys/{credential_id}/rename"): {"name": "Renamed"},
        ("POST", "/auth/oauth/unlink"): {"provider": "github", "subject": a.github_subject},
        ("POST", "/auth/api-keys"): {"name": "CI"},
        ("POST", "/auth/admin/users/{user_id}/ban"): {"reason": "the route matrix"},
        ("POST", "/auth/admin/users/{user_id}/sessions/revoke"): {"session": ctx.bystander.digest},
    }
    return {}, bodies


BODIES_OF_APP["routers"] = routers_bodies


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> RoutersApp:
    return RoutersApp(tmp_path_factory.mktemp("routers-matrix") / "routers.sqlite3")


@pytest.fixture
async def routers_target(routers: RoutersApp) -> AsyncIterator[Target]:
    engine = engine_on(routers.database)
    schema = Schema()
    async with engine.begin() as connection:
        await connection.run_sync(schema.metadata.create_all)
    app = routers.build(create_async_engine(f"sqlite+aiosqlite:///{routers.database}"), schema)
    accounts = Accounts(engine, schema, routers.totp_key)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=LIBRARY_ORIGIN, cookies=NoCookies()) as client:
        cases, _ = route_cases(app.routes)
        yield Target("routers", client, LIBRARY_ORIGIN, Snapshots(engine), accounts, routers.users, cases)
    await engine.dispose()


def test_routers_every_route_declares_a_requirement() -> None:
    app = RoutersApp(Path("unused.sqlite3")).build(create_async_engine("sqlite+aiosqlite://"), Schema())
    cases, undeclared = route_cases(app.routes)
    assert undeclared == [], f"routes of auth_router that declare no requirement: {undeclared}"
    assert {(case.method, case.path) for case in cases} >= {
        ("POST", "/auth/sign-in"),
        ("DELETE", "/auth/sessions/{session_id}"),
        ("POST", "/auth/account/delete"),
        ("POST", "/auth/email-change/request"),
        ("POST", "/auth/mfa/verify"),
        ("DELETE", "/auth/mfa/passkeys/{credential_id}"),
    }


@pytest.mark.parametrize("kind", KINDS)
async def test_routers_every_route_against(routers_target: Target, kind: str) -> None:
    await run_matrix(routers_target, routers_target.cases, kind)
