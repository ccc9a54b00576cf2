"""``AuthRequest``: one request's view of its session, validated lazily and at most once.

The middleware puts one at ``request.state.auth``. However many times and in whatever order a route and its
dependencies ask (concurrently too), the session and user are read from the database at most once. The cookies a
request asks for are handed to the middleware, which adds them to the response as it starts.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any, Generic

import anyio
from starlette.requests import HTTPConnection
from starlette.types import Scope

from lucia_fastapi.core.auth import Auth, UserT
from lucia_fastapi.core.cookies import Cookie, tossed_cookie_deletions
from lucia_fastapi.core.credentials import has_conflicting_cookies, header
from lucia_fastapi.core.errors import LuciaError
from lucia_fastapi.core.ids import session_digest
from lucia_fastapi.core.models import Key, Session, SessionUser
from lucia_fastapi.core.policy import Factor

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_MAX_BEARER_HEADER = 4096  # a longer Authorization header holds no credential of ours: not even looked at
_UNREAD: Any = object()  # "not asked yet", as distinct from "asked, and the answer is None"


class ResponseStartedError(RuntimeError):
    """A cookie was set after the response headers were sent: it can no longer reach the browser."""


class AuthRequest(Generic[UserT]):
    """The session of one request. ``rejection`` tells why its credentials were ignored, if they were: a failed
    origin check (``AUTH_INVALID_REQUEST``: the request came from another site), or a session that is not valid
    (``AUTH_INVALID_SESSION_ID``; its ``detail`` says whether it expired, was signed out or is unknown)."""

    # Defaults live on the class: a request that never asks about auth pays for two attribute stores, no more.
    rejection: LuciaError | None = None
    _connection: HTTPConnection | None = None
    _session_id: str | None = _UNREAD
    _from_cookie = False
    _session: Session | None = _UNREAD
    _user: UserT | None = _UNREAD
    _error: LuciaError | None = None
    _validating = False
    _validated: anyio.Event | None = None
    _cookie: Cookie | None = None
    _as_token = False
    issued_session: Session | None = None
    """The session this request was given (sign-in, or a replacement after a credential event or a step-up), if
    any: a route hands a token client its new ``session_id``."""
    _deletions: list[Cookie] | None = None
    _other_cookies: list[Cookie] | None = None
    response_started = False
    principal: object | None = None
    """Who a feature found this request to be by other credentials than a session (the API-keys feature's
    ``Principal``), kept so that a second guard of the same request does not read or count the key again."""

    def __init__(self, auth: Auth[UserT], scope: Scope) -> None:
        self.auth = auth
        self._scope = scope

    @property
    def connection(self) -> HTTPConnection:
        if self._connection is None:
            self._connection = HTTPConnection(self._scope)
        return self._connection

    @property
    def session_id(self) -> str | None:
        """The session id the request carries, if well-formed and not rejected by the origin check. No query."""
        if self._session_id is _UNREAD:
            try:
                self._session_id, self._from_cookie = self.auth.read_session_credential(self._scope)
            except LuciaError as error:
                # Kept without its traceback, whose frames point back here: no reference cycle per request.
                self.rejection, self._session_id = error.with_traceback(None), None
        return self._session_id

    async def get_session(self) -> Session | None:
        """The request's living session (renewed if it was idle), or ``None``. Raises ``LuciaError`` with
        ``DATABASE_UNAVAILABLE`` when the store cannot be reached: that is not "signed out"."""
        if self._session is _UNREAD:
            await self._validate()
        return self._session

    async def get_session_user(self) -> SessionUser[UserT]:
        """The session and its user, from the same single query as ``get_session``."""
        session = await self.get_session()
        if session is not None and self._user is _UNREAD:  # only after set_session(): the user is not known yet
            self._user = await self.auth.get_user(session.user_id)
        return SessionUser(session, self._user if session is not None else None)

    def set_session(self, session: Session | None) -> None:
        """Send ``session``'s cookie with the response (after sign-in, say) and answer later calls with it.
        ``None`` clears the session cookie; neither touches the database. For a token client
        (``deliver_as_token``) no cookie is sent: the route answers the session's id instead."""
        if not self._as_token:
            self._set_cookie(self.auth.create_session_cookie(session))
        self.issued_session = session
        self._session, self._user, self._error = session, _UNREAD if session is not None else None, None

    async def create_session(
        self,
        user_id: str,
        *,
        key: Key | None = None,
        second_factor_pending: bool = False,
        factors: Iterable[Factor] | None = None,
        credential_generation: int | None = None,
    ) -> Session:
        """Sign in: make a new session for ``user_id`` with this request's user agent and address, send its cookie,
        and invalidate the session the request carried, if any (a new id at every sign-in: no session fixation).
        Also the call after a password or privilege change, which killed every session: the current device gets
        a fresh one. Pass the ``key`` that ``Auth.use_key`` returned (or, for a passkey, the
        ``credential_generation`` read before it was checked) and the ``factors`` the user just proved (see
        ``Auth.create_session``)."""
        previous = self._session.session_id if isinstance(self._session, Session) else self.session_id
        if previous is not None:
            await self.auth.invalidate_session(previous)
        session = await self.auth.create_session(
            user_id,
            attributes=self.session_attributes(),
            key=key,
            second_factor_pending=second_factor_pending,
            factors=factors,
            credential_generation=credential_generation,
        )
        self.set_session(session)
        return session

    @property
    def from_bearer(self) -> bool:
        """Whether the request's session id came as ``Authorization: Bearer`` (an API client), not in the cookie.
        Only then may a route answer a session id in its body: a browser's cookie is ``HttpOnly``, and a page's
        script must never read it from a JSON answer. No query."""
        return self.session_id is not None and not self._from_cookie

    @property
    def bearer_token(self) -> str | None:
        """The ``Authorization: Bearer`` credential as sent, whatever its shape (a session id, or an API key for
        ``lucia_fastapi.features.api_keys``, which the session checks never accept), or ``None``. No query."""
        value = header(self._scope, b"authorization")
        if value is None or len(value) > _MAX_BEARER_HEADER:
            return None
        scheme, _, token = value.partition(" ")
        return token.strip() or None if scheme.lower() == "bearer" else None

    @property
    def current_digest(self) -> str | None:
        """The digest of the session this request carries (``SessionSlot``): the core hands this request the new
        session when a credential event or a rise in assurance replaces it. No query."""
        if isinstance(self._session, Session):
            return self._session.digest
        session_id = self.session_id
        return session_digest(session_id) if session_id is not None else None

    @property
    def known_session(self) -> Session | None:
        """The session this request has already read or been given (``get_session``, sign-in), or ``None``: none,
        or not read yet. No query: for a listener that must not add one (the activity log)."""
        return self._session if isinstance(self._session, Session) else None

    def replace_session(self, session: Session | None) -> None:
        """The core replaced this request's session (``SessionSlot``): answer later calls with ``session``, and
        send its cookie when the session came in a cookie. A bearer client is handed the new token by the route
        (``(await auth_request.get_session()).session_id``)."""
        if self._from_cookie or self._cookie is not None:
            self.set_session(session)
        else:
            self._session, self._user, self._error = session, _UNREAD if session is not None else None, None
            self.issued_session = session

    def deliver_as_token(self) -> None:
        """This request's client keeps its session as a bearer token, not a cookie (an API client, ``curl``): a
        session it is given is never sent as a cookie, so a request that no browser made cannot sign a browser
        in; the route answers the session's id instead (``issued_session``)."""
        self._as_token = True

    def clear_session(self) -> None:
        """Delete the session cookie in the browser. The session stays valid in the database: to sign out, use
        ``invalidate()``."""
        self.set_session(None)

    async def invalidate(self) -> None:
        """Sign out: delete the request's session from the database and clear its cookie."""
        session_id = self._session.session_id if isinstance(self._session, Session) else self.session_id
        if session_id is not None:
            await self.auth.invalidate_session(session_id)
        self.clear_session()

    @property
    def client_address(self) -> str | None:
        """The client's address, for ``auth.use_key(..., client_address=...)`` (per-address sign-in limits): the
        peer the ASGI server reports. Behind a reverse proxy, that is the proxy unless the server is told to trust
        its forwarded headers (uvicorn: ``--forwarded-allow-ips=<the proxy's address>``)."""
        client = self.connection.client
        return client.host if client else None

    def session_attributes(self) -> dict[str, Any]:
        """``user_agent`` and ``ip_address`` of this request, for ``auth.create_session(..., attributes=...)``."""
        client = self.connection.client
        user_agent = self.connection.headers.get("user-agent")
        if user_agent:  # header bytes the server let through: no control characters reach a column
            user_agent = _CONTROL_CHARACTERS.sub("", user_agent[:512]) or None
        address = stored_ip_address(client.host) if client else None
        return {"user_agent": user_agent or None, "ip_address": address}

    # The middleware's side -----------------------------------------------------------------------------------

    def start_response(self) -> list[str]:
        """Mark the response as started and return the ``Set-Cookie`` values to send with it."""
        self.response_started = True
        if self._cookie is None and not self._deletions and not self._other_cookies:
            return []  # the usual answer: nothing to send
        cookies = [self._cookie] if self._cookie is not None else []
        if self._deletions:
            cookies += self._deletions
        if self._other_cookies:
            cookies += self._other_cookies
        return [cookie.serialize() for cookie in cookies]

    async def _validate(self) -> None:
        # Concurrent first callers share one query: the first asks, the others wait for its answer. Only a caller
        # that has to wait makes an Event; the usual lone caller makes no primitive at all (an anyio Lock per
        # request cost more than the rest of this method).
        while self._validating:
            if self._validated is None:
                self._validated = anyio.Event()
            await self._validated.wait()
        if self._error is not None:
            raise self._error
        if self._session is not _UNREAD:
            return
        self._validating = True
        try:
            await self._ask_database()
        finally:  # also when cancelled: a waiter then takes over
            self._validating = False
            if self._validated is not None:
                self._validated.set()
                self._validated = None

    async def _ask_database(self) -> None:
        session_id = self.session_id
        if session_id is None:
            self._session, self._user = None, None
            if not self.response_started:
                self._delete_tossed_cookies()
            return
        try:
            session, user = await self.auth.validate_session_user(session_id)
        except LuciaError as error:
            if error.code != "AUTH_INVALID_SESSION_ID":
                self._error = error  # the database is down: keep the cookie, say so to every caller
                raise
            self._session, self._user, self.rejection = None, None, error.with_traceback(None)
            if self._from_cookie and not self.response_started:
                self._cookie = self.auth.create_session_cookie(None)  # a dead cookie: let the browser drop it
            return
        self._session, self._user = session, user
        if session is not None and session.is_fresh and self._from_cookie and not self.response_started:
            self._cookie = self.auth.create_session_cookie(session)  # renewed: push the later expiry out

    def send_cookie(self, cookie: Cookie) -> None:
        """Send another cookie than the session's with the response, whatever serves it (JSON or a page): a
        feature's own binding cookie (email sign-in's). ``ResponseStartedError`` once the headers are sent."""
        if self.response_started:
            raise ResponseStartedError("the response has already started: send cookies before returning it")
        self._other_cookies = [*(self._other_cookies or []), cookie]

    def _delete_tossed_cookies(self) -> None:
        # Two different session cookies: one was planted by a sibling subdomain. Trusted for neither (above); here
        # the response also deletes the planted ones where a Set-Cookie can reach them (tossed_cookie_deletions
        # says which it cannot). Only requests without a usable credential get here, so this costs others nothing.
        auth = self.auth
        if has_conflicting_cookies(self._scope, auth.cookie_name):
            host = header(self._scope, b"host") or ""
            self._deletions = tossed_cookie_deletions(auth.session_cookie, host=host, path=self._scope.get("path", "/"))

    def _set_cookie(self, cookie: Cookie) -> None:
        if self.response_started:
            raise ResponseStartedError(
                "the response has already started, so its Set-Cookie headers are sent: set or clear the session"
                " before returning (or streaming) the response"
            )
        self._cookie = cookie


def stored_ip_address(host: str | None) -> str | None:
    """The form of a client address that fits ``auth_session.ip_address`` (45 characters): an IP address in its
    canonical text, anything else (a Unix socket path, a test client's name) cut to 45 characters."""
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host[:64]))[:45]
    except ValueError:
        return _CONTROL_CHARACTERS.sub("", host[:45]) or None
