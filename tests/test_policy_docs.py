"""The account-security page says what the code does: its table of every route's requirement is the one
``scripts/route_requirements.py`` prints now (a route added, or a requirement changed, without rerunning
``--write`` fails here), and its tables name every credential event and every factor the policy knows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from lucia_fastapi.core.policy import CREDENTIAL_EVENTS, FIRST_FACTORS, SECOND_FACTORS, Assurance

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "concepts" / "account-security.md"
SCRIPT = ROOT / "scripts" / "route_requirements.py"
START, END = "<!-- route-requirements:start -->", "<!-- route-requirements:end -->"


def test_the_route_table_is_the_one_the_code_gives() -> None:
    # A process of its own: the script fixes the environment the example app reads before importing it, whatever
    # this process (and the tests before this one) imported or set.
    generated = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert generated.returncode == 0, generated.stderr
    text = PAGE.read_text()
    assert text.count(START) == 1 and text.count(END) == 1, "the page must keep both markers, once each"
    block = text[text.index(START) + len(START) : text.index(END)].removeprefix("\n")
    assert block == generated.stdout, (
        "docs/concepts/account-security.md's route table is stale: run "
        "`.venv/bin/python scripts/route_requirements.py --write` and commit the page"
    )


def test_the_generated_table_has_the_apps_and_routers_it_promises() -> None:
    block = PAGE.read_text().split(START)[1].split(END)[0]
    for title in ("examples.app.main:app", "email_router(flows)", "OAuth(...).routes()", "handle_logout_requests"):
        assert title in block
    assert "/email-change/request" in block and "/oauth/unlink" in block
    # The example is the library's pages and JSON endpoints: the rows tests/test_policy_attacks.py attacks, at the
    # levels it proves (a pending session reaches the second step only; an email change, revoking other devices,
    # turning TOTP off and deletion need a recent proof of the strongest factor; mailed links work for anyone).
    example = block.split("#### `email_router(flows)`")[0]
    for row in (
        "| `/second-factor` | GET, POST | `PENDING` |",
        "| `/reauthenticate` | GET, POST | `SIGNED_IN` |",
        "| `/account/email` | POST | `RECENT` |",
        "| `/account/sessions/revoke-others` | POST | `RECENT` |",
        "| `/account/two-step/totp/disable` | POST | `RECENT` |",
        "| `/account/delete` | POST | `RECENT` |",
        "| `/reset-password` | GET, POST | `ANONYMOUS` |",
        "| `/confirm-email-change` | GET, POST | `ANONYMOUS` |",
        "| `/cancel-email-change` | GET, POST | `ANONYMOUS` |",
        "| `/auth/email-change/request` | POST | `RECENT` |",
        "| `/auth/mfa/verify` | GET, POST | `PENDING` |",
        "| `/auth/account/delete` | POST | `RECENT` |",
    ):
        assert row in example, row


def _rows_of_table_after(text: str, heading: str) -> list[str]:
    section = text.split(heading, 1)[1]
    rows = []
    for line in section.splitlines()[1:]:
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append(line)
        elif rows and not line.startswith("|"):
            break
    return rows


def test_the_page_names_every_credential_event_factor_and_level() -> None:
    text = PAGE.read_text()
    events = {row.split("|")[1].strip().strip("`") for row in _rows_of_table_after(text, "| event | raised by")}
    assert events == set(CREDENTIAL_EVENTS)
    factors = {row.split("|")[1].strip().strip("`") for row in _rows_of_table_after(text, "| factor | proven by")}
    assert factors == set(FIRST_FACTORS | SECOND_FACTORS)
    levels = {row.split("|")[1].strip().strip("`") for row in _rows_of_table_after(text, "| level | the request")}
    assert levels == {level.name for level in Assurance}
