"""The OAuth feature's pure parts: return-path validation, key derivation, configuration checks, and reprs that
never show a secret."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken

from lucia_fastapi.features.oauth import (
    OAuthProvider,
    OIDCProvider,
    ProviderTokens,
    TokenSet,
    derive_fernet,
    github,
    safe_return_path,
)
from lucia_fastapi.features.oauth.state import FlowState, code_challenge_s256

CALLBACK = "https://app.example/oauth/x/callback"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/profile", "/profile"),
        ("/connections?notice=oauth-linked#top", "/connections?notice=oauth-linked#top"),
        (None, "/home"),
        ("", "/home"),
        ("profile", "/home"),
        ("https://evil.example/", "/home"),
        ("//evil.example", "/home"),
        ("/\\evil.example", "/home"),
        ("\\\\evil.example", "/home"),
        ("/\tevil", "/home"),
        ("/a\r\nSet-Cookie: x=1", "/home"),
        ("/javascript:alert(1)", "/home"),
        ("/" + "a" * 5000, "/home"),
    ],
)
def test_return_paths_stay_on_the_site(value: str | None, expected: str) -> None:
    assert safe_return_path(value, "/home") == expected


def test_pkce_challenge_is_s256_as_authlib_computes_it() -> None:
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    for verifier in ("dBjftJeZ4CVP-mJ92IZ8ZaQ1hn0jNRFGZ3-t0W6a_DQ", "a" * 43, "Z" * 128):
        assert code_challenge_s256(verifier) == create_s256_code_challenge(verifier)


def test_keys_are_checked_and_purposes_are_separate() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        derive_fernet(["short"], "x")
    with pytest.raises(ValueError, match="non-empty list"):
        derive_fernet("a single string is a mistake, not a list of keys", "x")
    key = Fernet.generate_key()
    sealed = derive_fernet([key], "state").encrypt(b"hello")
    with pytest.raises(InvalidToken):
        derive_fernet([key], "tokens").decrypt(sealed)
    rotated = derive_fernet([Fernet.generate_key(), key], "state")  # a new key first, the old one still reads
    assert rotated.decrypt(sealed) == b"hello"


def test_provider_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="provider name"):
        OAuthProvider("Has:Colon", client_id="c", client_secret="s", redirect_uri=CALLBACK)
    with pytest.raises(ValueError, match="redirect_uri"):
        OAuthProvider("x", client_id="c", client_secret="s", redirect_uri="/relative/callback")
    with pytest.raises(ValueError, match="redirect_uri"):
        OAuthProvider("x", client_id="c", client_secret="s", redirect_uri=f"{CALLBACK}?next=/")
    with pytest.raises(ValueError, match="no HS"):
        OIDCProvider(
            "x",
            issuer="https://id.example",
            client_id="c",
            client_secret="s",
            redirect_uri=CALLBACK,
            algorithms=["HS256"],
        )
    with pytest.raises(ValueError, match="openid"):
        OIDCProvider(
            "x", issuer="https://id.example", client_id="c", client_secret="s", redirect_uri=CALLBACK, scopes=["email"]
        )


def test_reprs_show_no_secret() -> None:
    shown = " ".join(
        repr(value)
        for value in (
            TokenSet(access_token="AT-secret", refresh_token="RT-secret", id_token="ID-secret"),
            ProviderTokens("AT-secret", "RT-secret", None, None),
            FlowState("x", "STATE-secret", "NONCE-secret", "VERIFIER-secret", "/", 0),
            github(client_id="c", client_secret="CLIENT-secret", redirect_uri=CALLBACK),
        )
    )
    assert "secret" not in shown


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import importlib.util
    import sys

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "joserfc" else real_find_spec(name, *args)
    )
    monkeypatch.delitem(sys.modules, "lucia_fastapi.features.oauth.providers")
    with pytest.raises(ImportError, match=r"pip install 'lucia_fastapi\[oauth\]'"):
        importlib.import_module("lucia_fastapi.features.oauth.providers")
