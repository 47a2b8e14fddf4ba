"""Token verification without the emulator: real RS256 signatures against certificates in
Google's published shape (served by a fake transport), so forging is shown to fail."""

from __future__ import annotations

import base64
import datetime
import json
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from edge.identity import TokenVerifier, Unauthorized
from edge.settings import EdgeSettings

PROJECT = "demo-unit"


def keypair() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "securetoken")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(key: rsa.RSAPrivateKey, kid: str, claims: dict[str, Any]) -> str:
    header = b64(json.dumps({"alg": "RS256", "kid": kid, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{body}.{b64(signature)}"


def claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": f"https://securetoken.google.com/{PROJECT}",
        "aud": PROJECT,
        "sub": "user-1",
        "iat": now,
        "auth_time": now,
        "exp": now + 3600,
        "email": "a@example.com",
        "email_verified": True,
        "firebase": {"sign_in_provider": "google.com"},
        **extra,
    }


class FakeCerts:
    """google-auth's transport Request, answering the certificate URL with our certificate."""

    def __init__(self, certs: dict[str, str]) -> None:
        self.certs = certs

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:
        body = json.dumps(self.certs).encode()

        class Response:
            status = 200
            headers = {"cache-control": "public, max-age=3600"}
            data = body

        return Response()


@pytest.fixture
def verifier(monkeypatch: pytest.MonkeyPatch) -> tuple[TokenVerifier, rsa.RSAPrivateKey]:
    monkeypatch.delenv("FIREBASE_AUTH_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("DEPLOYCHAT_PROJECT_ID", PROJECT)
    key, cert = keypair()
    verifier = TokenVerifier(EdgeSettings())
    from firebase_admin import auth

    client = auth._get_client(verifier.app)
    client._token_verifier.request = FakeCerts({"kid-1": cert})
    return verifier, key


def test_a_token_signed_by_the_published_key_is_accepted(verifier: Any) -> None:
    tokens, key = verifier
    user = tokens.verify(sign(key, "kid-1", claims()))
    assert (user.uid, user.email, user.email_verified) == ("user-1", "a@example.com", True)


@pytest.mark.parametrize(
    "forge",
    [
        lambda key, other: sign(other, "kid-1", claims()),  # someone else's key
        lambda key, other: sign(key, "kid-unknown", claims()),  # a key nobody published
        lambda key, other: sign(key, "kid-1", claims(aud="other-project")),
        lambda key, other: sign(key, "kid-1", claims(iss="https://evil.example/x")),
        lambda key, other: sign(key, "kid-1", claims(exp=int(time.time()) - 60)),
        lambda key, other: sign(key, "kid-1", claims(sub="")),
    ],
)
def test_forged_tokens_are_refused(verifier: Any, forge: Any) -> None:
    tokens, key = verifier
    other, _ = keypair()
    with pytest.raises(Unauthorized):
        tokens.verify(forge(key, other))


def test_an_unsigned_emulator_style_token_is_refused_outside_the_emulator(verifier: Any) -> None:
    tokens, _ = verifier
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    with pytest.raises(Unauthorized):
        tokens.verify(f"{header}.{b64(json.dumps(claims()).encode())}.")


def test_a_tampered_payload_breaks_the_signature(verifier: Any) -> None:
    tokens, key = verifier
    head, _, signature = sign(key, "kid-1", claims()).split(".")
    tampered = b64(json.dumps(claims(sub="admin")).encode())
    with pytest.raises(Unauthorized):
        tokens.verify(f"{head}.{tampered}.{signature}")
