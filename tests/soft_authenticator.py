"""A software WebAuthn authenticator (P-256, "none" attestation) for unit tests of the passkey ceremonies: it
answers registration and authentication options the way a browser with a platform authenticator would, and
lets a test lie about the origin or the RP ID, or replay an answer. The browser tests use Chromium's own virtual
authenticator instead."""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

UP, UV, AT = 0x01, 0x04, 0x40


@dataclass
class SoftCredential:
    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0


@dataclass
class SoftAuthenticator:
    origin: str
    credentials: list[SoftCredential] = field(default_factory=list)
    counts_signatures: bool = True

    def create(self, options_json: str, *, origin: str | None = None, rp_id: str | None = None) -> dict[str, Any]:
        options = json.loads(options_json)
        rp = rp_id or options["rp"]["id"]
        credential = SoftCredential(
            credential_id=secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp,
            user_handle=base64url_to_bytes(options["user"]["id"]),
        )
        self.credentials.append(credential)
        numbers = credential.private_key.public_key().public_numbers()
        cose = {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")}
        attested = bytes(16) + struct.pack(">H", len(credential.credential_id)) + credential.credential_id
        auth_data = (
            hashlib.sha256(rp.encode()).digest() + bytes([UP | UV | AT]) + struct.pack(">I", 0) + attested
        ) + cbor2.dumps(cose)
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return _public_key_credential(
            credential.credential_id,
            {
                "clientDataJSON": bytes_to_base64url(client_data),
                "attestationObject": bytes_to_base64url(attestation),
                "transports": ["internal"],
            },
        )

    def get(
        self,
        options_json: str,
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        credential: SoftCredential | None = None,
        user_verified: bool = True,
    ) -> dict[str, Any]:
        options = json.loads(options_json)
        chosen = credential or self.credentials[-1]
        if self.counts_signatures:
            chosen.sign_count += 1
        rp = rp_id or chosen.rp_id
        flags = UP | (UV if user_verified else 0)
        auth_data = hashlib.sha256(rp.encode()).digest() + bytes([flags]) + struct.pack(">I", chosen.sign_count)
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = chosen.private_key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return _public_key_credential(
            chosen.credential_id,
            {
                "clientDataJSON": bytes_to_base64url(client_data),
                "authenticatorData": bytes_to_base64url(auth_data),
                "signature": bytes_to_base64url(signature),
                "userHandle": bytes_to_base64url(chosen.user_handle),
            },
        )

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        data = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(data, separators=(",", ":")).encode()


def _public_key_credential(credential_id: bytes, response: dict[str, Any]) -> dict[str, Any]:
    """The JSON a browser's ``PublicKeyCredential.toJSON()`` gives, around an attestation or assertion."""
    cid = bytes_to_base64url(credential_id)
    return {"id": cid, "rawId": cid, "type": "public-key", "response": response, "clientExtensionResults": {}}
