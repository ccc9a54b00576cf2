"""The README's FastAPI sample, run as written: copied out of README.md into a module, its tables made with the
``lucia-fastapi migrate`` command the README shows, served by uvicorn, and used over HTTP.

Every promise the README makes about it is checked: credentials in a form body (a query-string password is not
read), 201 at sign-up with a cookie, 409 for a taken email, 400 for an empty password, 401 for a wrong one, 429
with ``Retry-After`` when an account is being guessed, 403 for a cross-site post, sign-out, and never a 500.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lucia_fastapi.testing.processes import UvicornProcess

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = re.compile(
    r"<!-- --8<-- \[start:sample\] -->\n```python\n(?P<code>.*?)```\n<!-- --8<-- \[end:sample\] -->", re.DOTALL
)
COOKIE = "auth_session"


def readme_sample() -> str:
    match = SAMPLE.search((ROOT / "README.md").read_text())
    assert match, "README.md must hold the sample between the start:sample and end:sample markers"
    return match.group("code")


def test_the_sample_is_where_the_docs_include_it_from() -> None:
    assert '--8<-- "README.md:sample"' in (ROOT / "docs" / "how-to" / "by-hand.md").read_text()
    code = readme_sample()
    assert "Form(" in code and "Query(" not in code
    compile(code, "README.md", "exec")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UvicornProcess]:
    project = tmp_path_factory.mktemp("readme-app")
    (project / "readme_app.py").write_text(readme_sample())
    # This checkout's package, whatever the virtualenv's editable install points at.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(project)])}
    migrate = subprocess.run(  # the README's command, through our interpreter
        [sys.executable, "-m", "lucia_fastapi", "migrate", "--database-url", "sqlite:///auth.sqlite3"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    process = UvicornProcess("readme_app:app", cwd=project, env=env)
    try:
        yield process
    finally:
        process.stop()
    assert "Traceback" not in process.log_text(), process.log_text()
    assert " 500 " not in process.log_text(), process.log_text()


def client(server: UvicornProcess, *, origin: str | None = None) -> httpx.Client:
    """A browser-like client: it keeps cookies and says where its forms come from."""
    return httpx.Client(base_url=server.url, headers={"Origin": origin or server.url}, timeout=30)


def test_sign_up_sign_in_me_and_sign_out(server: UvicornProcess) -> None:
    with client(server) as browser:
        assert browser.get("/me").status_code == 401

        signed_up = browser.post("/signup", data={"email": " Ada@Example.com ", "password": "correct horse"})
        assert signed_up.status_code == 201, signed_up.text
        user_id = signed_up.json()["user_id"]
        first_cookie = browser.cookies[COOKIE]
        set_cookie = signed_up.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
        assert browser.get("/me").json() == {"user_id": user_id}

        signed_in = browser.post("/signin", data={"email": "ada@example.com", "password": "correct horse"})
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json() == {"user_id": user_id}
        assert browser.cookies[COOKIE] != first_cookie, "signing in must make a new session id"
        old = httpx.get(f"{server.url}/me", headers={"Authorization": f"Bearer {first_cookie}"})
        assert old.status_code == 401, "the session the sign-in replaced must be dead"
        assert browser.get("/me").json() == {"user_id": user_id}

        signed_out = browser.post("/logout")
        assert signed_out.status_code == 200 and signed_out.json() == {"ok": True}
        assert browser.get("/me").status_code == 401


def test_each_mistake_has_its_own_clear_answer(server: UvicornProcess) -> None:
    with client(server) as browser:
        assert (
            browser.post("/signup", data={"email": "grace@example.com", "password": "hopper-1906"}).status_code == 201
        )
        browser.cookies.clear()

        taken = browser.post("/signup", data={"email": "GRACE@example.com", "password": "another one"})
        assert taken.status_code == 409, taken.text
        assert "exists" in taken.text

        empty = browser.post("/signup", data={"email": "linus@example.com", "password": ""})
        assert empty.status_code == 400, empty.text
        no_email = browser.post("/signup", data={"email": "", "password": "something"})
        assert no_email.status_code == 400, no_email.text

        wrong = browser.post("/signin", data={"email": "grace@example.com", "password": "wrong"})
        assert wrong.status_code == 401, wrong.text
        unknown = browser.post("/signin", data={"email": "nobody@example.com", "password": "wrong"})
        assert unknown.status_code == 401
        assert unknown.json() == wrong.json(), "an unknown account and a wrong password must read alike"
        assert browser.post("/signin", data={"email": "grace@example.com", "password": ""}).status_code == 400
        # A too-long password is a 400 that never repeats it (FastAPI's own validation error would).
        secret = "s3cret-" * 100
        for path in ("/signup", "/signin"):
            long = browser.post(path, data={"email": "grace@example.com", "password": secret})
            assert long.status_code == 400 and "s3cret-" not in long.text, long.text

        # The query string is never read for credentials: this is an empty form.
        in_url = browser.post("/signin", params={"email": "grace@example.com", "password": "hopper-1906"})
        assert in_url.status_code == 400, in_url.text
        assert COOKIE not in browser.cookies


def test_cross_site_posts_are_refused(server: UvicornProcess) -> None:
    with client(server, origin="https://evil.example") as attacker:
        for path in ("/signup", "/signin"):
            refused = attacker.post(path, data={"email": "mallory@example.com", "password": "mallory-pass"})
            assert refused.status_code == 403, (path, refused.text)
            assert COOKIE not in attacker.cookies


@pytest.mark.parametrize(
    "body",
    [
        b"email=" + b"a" * 5000 + b"%40example.com&password=x",
        b"email=ada%40example.com&password=" + b"p" * 5000,
        b"email=nul%00%40example.com&password=nul%00pass",
        b"email=%FF%FE%40example.com&password=%ED%B3%BF",
        b"email=one%40example.com&email=two%40example.com&password=twice",
        b"\xff\xfe=%%%&&&==",
    ],
    ids=["long-email", "long-password", "nul", "bad-utf8", "repeated", "garbage"],
)
def test_hostile_forms_are_never_500(server: UvicornProcess, body: bytes) -> None:
    with client(server) as browser:
        for path in ("/signup", "/signin"):
            answer = browser.post(path, content=body, headers={"content-type": "application/x-www-form-urlencoded"})
            # A form the sample accepts as an account is fine (it is only text); a 5xx never is.
            assert answer.status_code < 500, (path, answer.status_code, answer.text)
            if b"%00" in body:  # identifiers with NUL never reach the store: a clear refusal
                assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)


def test_guessing_one_account_is_throttled_with_retry_after(server: UvicornProcess) -> None:
    with client(server) as browser:
        assert (
            browser.post("/signup", data={"email": "target@example.com", "password": "the-real-one"}).status_code == 201
        )
        browser.cookies.clear()
        statuses = []
        for attempt in range(30):
            answer = browser.post("/signin", data={"email": "target@example.com", "password": f"guess-{attempt}"})
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                break
        assert statuses[-1] == 429, f"no 429 after {len(statuses)} wrong passwords: {statuses}"
        assert set(statuses[:-1]) == {401}
        assert int(answer.headers["Retry-After"]) >= 1
        # Locked means locked: even the right password waits, and no session is made.
        locked = browser.post("/signin", data={"email": "target@example.com", "password": "the-real-one"})
        assert locked.status_code == 429
        assert COOKIE not in browser.cookies
