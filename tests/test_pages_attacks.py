"""Every HTML page the routers mount with ``pages=True`` (issue 21), attacked as ``test_routers_attacks`` attacks
the JSON endpoints, on FastAPI and plain Starlette with every feature on:

- the pages tested are exactly those mounted, each declaring its policy (``test_the_table_is_every_mounted_page``);
- every form's ``POST`` gets the hostile-input corpus of its action from every kind of session: never a 5xx, an
  HTML answer that echoes nothing unescaped, no session for a stranger, and the policy's refusals as redirects to
  the sign-in, second-step or "confirm it's you" page;
- every form's ``POST`` sent cross-site with a body that would work (A's password, live links, TOTP code) is 403
  with nothing changed and no session set, while A's browser from the site itself is not refused;
- every page's ``GET`` from every kind of session: the page, or the redirect the policy asks for; never another
  user's data; ``next`` never leads off the site.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit

import pytest

from lucia_fastapi.core.policy import Assurance
from lucia_fastapi.pages import LINKS, Page, page_table
from lucia_fastapi.web.actions import Action
from lucia_fastapi.web.policy import endpoints, route_requirement
from tests.test_routers_attacks import (
    ACTIONS,
    BASE,
    CROSS_SITE,
    FORM,
    KINDS,
    LEVEL_OF_KIND,
    LINK_OF_ACTION,
    PASSWORD,
    PREFIX,
    SKIPPED_PATHS,
    Answer,
    Attack,
    World,
    as_form,
    attacks,
    built_world,
    corpus_for,
    mount,
    refuses,
    send,
    state_of,
    unused_features,
    would_work,
)

BY_NAME = {action.name: action for action in ACTIONS}
PAGES = [page for page in page_table(ACTIONS) if page.submit is None or page.submit in BY_NAME]
FORMS = [(page, BY_NAME[page.submit]) for page in PAGES if page.submit is not None]
SHOWN = [page for page in PAGES if page.template is not None]
POLICY_PAGES = {LINKS["sign_in"], LINKS["second_factor"], LINKS["reauthenticate"]}
UNESCAPED = (b"<script>alert(1)</script>", b"{{7*7}}${7*7}<")


def form_id(item: tuple[Page, Action]) -> str:
    return f"POST {item[0].path}"


def page_path(world: World, page: Page, values: dict[str, bytes] | None = None) -> bytes:
    """The page's path with A's identifiers in its parameters (``values``: percent-encoded replacements)."""
    plausible = {"session_id": world.bystander_digest, "credential_id": world.a.passkey_id, "user_id": world.a.user_id}
    path = page.path.encode()
    for name in re.findall(r"{(\w+)}", page.path):
        value = (values or {}).get(name) or quote(plausible.get(name, "plausible"), safe="").encode()
        path = path.replace(b"{" + name.encode() + b"}", value)
    return path


@pytest.fixture
async def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """``request.param``: (framework, database); the app mounts the pages too."""
    async with built_world(request, tmp_path_factory, *request.param, pages=True) as built:
        yield built


def test_the_table_is_every_mounted_page() -> None:
    """The pages attacked below are exactly the pages each app mounts besides the JSON endpoints, each declaring
    what its form's action needs."""
    wanted: dict[tuple[str, str], Assurance | None] = {}
    for page in PAGES:
        if page.template is not None:
            wanted[("GET", page.path)] = page.needs
        if page.submit is not None:
            wanted[("POST", page.path)] = BY_NAME[page.submit].needs
    wanted[("GET", "/lucia-static/{name}")] = Assurance.ANONYMOUS
    for framework in ("fastapi", "starlette"):
        app = mount(unused_features(), framework, pages=True)
        mounted = {}
        for endpoint in endpoints(app.routes):  # type: ignore[attr-defined]
            if endpoint.path in SKIPPED_PATHS or endpoint.path.startswith(PREFIX + "/"):
                continue
            for method in endpoint.methods - {"HEAD"}:
                mounted[(method, endpoint.path)] = route_requirement(endpoint.route, method)
        assert mounted == wanted, framework
    assert len(FORMS) >= 20 and len(SHOWN) >= 15


def html_problems(answer: Answer, what: str, *, anonymous: bool, cookie_name: str) -> list[str]:
    problems = []
    if answer.status >= 500 or answer.status == 0:
        problems.append(f"{what}: {answer.excerpt()}")
    if answer.status >= 400:
        content_type = b"".join(answer.header_values(b"content-type"))
        if not content_type.startswith(b"text/html"):
            problems.append(f"{what}: an error that is not a page: {content_type!r} {answer.excerpt()}")
    for unescaped in UNESCAPED:
        if unescaped in answer.body:
            problems.append(f"{what}: {unescaped!r} shown unescaped")
    if anonymous and answer.session_set(cookie_name):
        problems.append(f"{what}: a stranger got a session")
    return problems


def redirected_by_policy(answer: Answer) -> bool:
    location = b"".join(answer.header_values(b"location")).decode()
    return answer.status == 303 and location.split("?")[0] in POLICY_PAGES


async def post(world: World, page: Page, kind: str, hostile: Attack) -> Answer:
    credentials = await world.credentials(kind)
    target = page_path(world, page, hostile.path) + (b"?" + hostile.query if hostile.query else b"")
    headers = [*credentials, *hostile.request_headers()]
    answer = await send(world.app, "POST", target, headers, hostile.body, chunked=hostile.chunked)
    await world.after(kind, answer)
    return answer


@pytest.mark.parametrize(
    "world", [("starlette", "sqlite"), ("fastapi", "postgresql")], indirect=True, ids=["starlette-sqlite", "fastapi-pg"]
)
@pytest.mark.parametrize("form", FORMS, ids=form_id)
async def test_hostile_input_on_every_form(world: World, form: tuple[Page, Action]) -> None:
    """The corpus of the form's action, from every kind of session: never a 5xx, a page (never JSON) for every
    refusal, nothing echoed unescaped, no session for a stranger, the policy's refusals as redirects."""
    page, action = form
    problems: list[str] = []
    corpus = list(attacks(action))
    sent = 0
    for kind in KINDS:
        for hostile in corpus_for(action, kind, corpus):
            answer = await post(world, page, kind, hostile)
            sent += 1
            what = f"POST {page.path} [{kind}, {hostile.name}]"
            problems += html_problems(answer, what, anonymous=kind == "anonymous", cookie_name=world.cookie_name)
            if refuses(action, kind) and kind != "bearer" and not redirected_by_policy(answer):
                problems.append(f"{what}: not redirected by the policy: {answer.excerpt()}")
    assert sent >= len(KINDS)
    assert not problems, f"{len(problems)} problem(s) in {sent} requests:\n" + "\n".join(problems[:60])


def refused_as_cross_site(answer: Answer) -> bool:
    return answer.status == 403 and b'data-code="AUTH_INVALID_REQUEST"' in answer.body


@pytest.mark.parametrize(
    "world", [("fastapi", "sqlite"), ("starlette", "sqlite")], indirect=True, ids=["fastapi", "starlette"]
)
@pytest.mark.parametrize("form", FORMS, ids=form_id)
async def test_cross_site_form_posts_change_nothing(world: World, form: tuple[Page, Action]) -> None:
    """A cross-site form post of a body that would work is refused, with and without A's cookie, changing no row
    and sending no mail; A's browser posting the same from the site itself is not refused as cross-site."""
    page, action = form
    await world.accounts.issue(world.a, tuple(LINK_OF_ACTION.values()))
    victim = await world.accounts.session(world.a, "recent")
    cookie = (b"cookie", f"{world.cookie_name}={victim.session_id}".encode())
    body = as_form(action, would_work(world, action))
    content_type = (b"content-type", FORM.encode())
    problems: list[str] = []
    before = await state_of(world)
    for name, headers in CROSS_SITE.items():
        for with_cookie in (True, False) if headers else (True,):
            what = f"POST {page.path} [{name}, {'with' if with_cookie else 'without'} A's cookie]"
            sent = [*headers, content_type, *([cookie] if with_cookie else [])]
            answer = await send(world.app, "POST", page_path(world, page), sent, body)
            if not refused_as_cross_site(answer):
                problems.append(f"{what}: not refused as cross-site: {answer.excerpt()}")
            if answer.session_set(world.cookie_name):
                problems.append(f"{what}: a session was handed out")
            after = await state_of(world)
            if after != before:
                problems.append(f"{what}: something changed")
                before = after
    assert not problems, "\n".join(problems)
    same_site = [cookie, (b"origin", BASE.encode()), content_type]
    answer = await send(world.app, "POST", page_path(world, page), same_site, body)
    assert answer.status < 500 and not refused_as_cross_site(answer), answer.excerpt()


# Showing pages -----------------------------------------------------------------------------------------------------

HOSTILE_QUERIES = [
    b"",
    b"next=https://evil.example/&token=%00%ff&notice=%3Cscript%3E",
    b"next=//evil.example&token=" + b"a" * 5000,
    b"next=/%0d%0aSet-Cookie:%20x=1&notice=signed-out",
]


@pytest.mark.parametrize("world", [("starlette", "sqlite")], indirect=True, ids=["starlette-sqlite"])
@pytest.mark.parametrize("page", SHOWN, ids=lambda page: f"GET {page.path}")
async def test_every_page_from_every_kind_of_session(world: World, page: Page) -> None:
    """The page itself for a session the page lets through, else the policy's redirect back to it; B's session
    never sees A's address; a hostile query is harmless and never leads off the site."""
    problems: list[str] = []
    for kind in KINDS:
        for query in HOSTILE_QUERIES:
            credentials = await world.credentials(kind)
            target = page_path(world, page) + (b"?" + query if query else b"")
            answer = await send(world.app, "GET", target, credentials)
            what = f"GET {page.path}?{query[:40]!r} [{kind}]"
            problems += html_problems(answer, what, anonymous=kind == "anonymous", cookie_name=world.cookie_name)
            for location in answer.header_values(b"location"):
                if urlsplit(location.decode()).netloc or location.startswith((b"//", b"/\\")):
                    problems.append(f"{what}: leads off the site: {location!r}")
                if b"\r" in location or b"\n" in location:
                    problems.append(f"{what}: a header split: {location!r}")
            if page.needs > LEVEL_OF_KIND[kind] and kind != "bearer":
                if not redirected_by_policy(answer):
                    problems.append(f"{what}: not redirected by the policy: {answer.excerpt()}")
            elif (
                answer.status != 200
                and not (page.needs == Assurance.RECENT and redirected_by_policy(answer))
                # No session here is an admin's: an admin page refuses them all (tests/test_admin.py shows it).
                and not (page.path.startswith(LINKS["admin"]) and b'data-code="ADMIN_REQUIRED"' in answer.body)
            ):
                problems.append(f"{what}: not shown: {answer.excerpt()}")
            if kind == "other" and world.a.email.encode() in answer.body:
                problems.append(f"{what}: B sees A's address")
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:60])


@pytest.mark.parametrize("world", [("fastapi", "sqlite")], indirect=True, ids=["fastapi-sqlite"])
async def test_sign_in_never_redirects_off_the_site(world: World) -> None:
    """``next`` is followed only to a path of this site, whatever shape the attacker gives it."""
    for wanted in (b"https://evil.example/", b"//evil.example", b"/\\evil.example", b"javascript:alert(1)", b"/ok"):
        body = f"email={quote(world.a.email)}&password={quote(PASSWORD)}".encode()
        headers = [(b"origin", BASE.encode()), (b"content-type", FORM.encode())]
        target = b"/sign-in?next=" + quote(wanted.decode(), safe="").encode()
        answer = await send(world.app, "POST", target, headers, body)
        assert answer.status == 303, answer.excerpt()
        (location,) = answer.header_values(b"location")
        assert location.startswith(b"/") and not location.startswith((b"//", b"/\\")), location
        if wanted == b"/ok":  # A has a second factor: the second step first, then /ok
            assert location == b"/second-factor?next=%2Fok", location
