"""Print, as markdown, every endpoint the routers mount with every feature on: method, path, what it needs, its body,
its success status and the error codes it may answer (the same data the FastAPI router puts in OpenAPI).

    python scripts/endpoint_table.py            # print the table
    python scripts/endpoint_table.py --write    # rewrite the block in docs/reference/endpoints.md

The page includes the output between ``<!-- endpoints:start -->`` and ``<!-- endpoints:end -->``;
``tests/test_routers_docs.py`` fails when the block differs from what this prints now. Nothing connects to a
database or a network: the features are built on memory stores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reference" / "endpoints.md"
START = "<!-- endpoints:start -->"
END = "<!-- endpoints:end -->"
PREFIX = "/auth"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def table() -> str:
    """The markdown table of every action, in mounting order."""
    from cryptography.fernet import Fernet
    from sqlalchemy.ext.asyncio import create_async_engine

    from lucia_fastapi import Auth, MemoryAdapter
    from lucia_fastapi.adapters.sqlalchemy.activity import SQLAlchemyActivityStore
    from lucia_fastapi.adapters.sqlalchemy.api_keys import SQLAlchemyApiKeyStore
    from lucia_fastapi.features.activity import SecurityActivity
    from lucia_fastapi.features.api_keys import ApiKeys
    from lucia_fastapi.features.email import OutboxEmailSender
    from lucia_fastapi.features.email.flows import EmailFlows
    from lucia_fastapi.features.mfa import MFA, MemoryMFAStore, RelyingParty
    from lucia_fastapi.features.oauth import OAuth
    from lucia_fastapi.features.oauth.providers import github
    from lucia_fastapi.features.tokens import SingleUseTokens
    from lucia_fastapi.features.tokens.store import MemoryTokenStore
    from lucia_fastapi.routers import auth_actions
    from lucia_fastapi.routers.openapi import error_codes

    auth: Auth = Auth(MemoryAdapter())
    email = EmailFlows(
        auth, tokens=SingleUseTokens(MemoryTokenStore()), sender=OutboxEmailSender(), base_url="http://localhost"
    )
    mfa = MFA(
        auth,
        MemoryMFAStore(),
        totp_keys=[Fernet.generate_key().decode()],
        relying_party=RelyingParty(id="localhost", name="docs", origins=["http://localhost"]),
    )
    provider = github(
        client_id="docs",
        client_secret="docs",  # noqa: S106 - never used: nothing is sent to GitHub
        redirect_uri=f"http://localhost{PREFIX}/oauth/github/callback",
    )
    oauth = OAuth(auth, providers=[provider], secret_keys=[Fernet.generate_key().decode()])
    # The SQL store of the keys: its engine connects only when used, which listing the actions never does.
    unused = create_async_engine("sqlite+aiosqlite://")
    api_keys = ApiKeys(auth, SQLAlchemyApiKeyStore(unused))
    activity = SecurityActivity(auth, SQLAlchemyActivityStore(unused))
    rows = [
        "| method | path | needs | body | success | errors (besides the policy's and the body's) |",
        "|---|---|---|---|---|---|",
    ]
    policy_codes = {
        "AUTH_INVALID_REQUEST",
        "NOT_AUTHENTICATED",
        "AUTH_INVALID_SESSION_ID",
        "DATABASE_UNAVAILABLE",
        "AUTH_SECOND_FACTOR_REQUIRED",
        "AUTH_REAUTHENTICATION_REQUIRED",
        "INVALID_INPUT",
        "BODY_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
    }
    for action in auth_actions(
        auth, email=email, mfa=mfa, oauth=oauth, api_keys=api_keys, activity=activity, prefix=PREFIX
    ):
        body = ", ".join(f"`{spec.name}`" + ("" if spec.required else "?") for spec in action.fields) or "—"
        if action.fields and not action.unsafe:
            body = "query: " + body
        every = [code for codes in error_codes(action).values() for code in codes if code not in policy_codes]
        codes = list(dict.fromkeys(every))  # a code answered at two statuses is listed once
        errors = ", ".join(f"`{code}`" for code in codes) or "—"
        needs = action.needs.name.lower().replace("anonymous", "anyone")
        rows.append(f"| {action.method} | `{PREFIX}{action.path}` | {needs} | {body} | {action.status} | {errors} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    """Print the table, or with ``--write`` put it into the page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite the block in {DOC.relative_to(ROOT)}")
    args = parser.parse_args()
    text = table()
    if not args.write:
        print(text, end="")
        return
    page = DOC.read_text()
    before, _, rest = page.partition(START)
    _, _, after = rest.partition(END)
    DOC.write_text(f"{before}{START}\n{text}{END}{after}")


if __name__ == "__main__":
    main()
