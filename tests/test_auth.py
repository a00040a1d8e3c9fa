"""Who a client is: JWT verification with an algorithm allow-list, and insecure loopback mode."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tidings.auth import Authenticator, AuthError, check_exposure
from tidings.config import ConfigError, load_settings

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def _token(claims: dict, key=SECRET, algorithm="HS256") -> str:
    return jwt.encode(claims, key, algorithm)


def _claims(**extra) -> dict:
    return {"sub": "alice", "exp": int(time.time()) + 60, **extra}


def _pem(private) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def test_hs256_token_names_the_user_and_carries_info():
    auth = Authenticator(load_settings(jwt_secret=SECRET))
    identity = auth.authenticate({"token": _token(_claims(info={"name": "Alice"}))})
    assert identity.user == "alice" and identity.meta == {"name": "Alice"}


@pytest.mark.parametrize("claims, message", [
    ({"sub": "alice", "exp": int(time.time()) - 5}, "expired"),
    ({"sub": "alice"}, "exp"),
    ({"exp": int(time.time()) + 60}, "sub"),
])
def test_bad_claims_are_refused(claims, message):
    auth = Authenticator(load_settings(jwt_secret=SECRET))
    with pytest.raises(AuthError, match=message):
        auth.authenticate({"token": _token(claims)})


def test_wrong_secret_none_algorithm_and_missing_token_are_refused():
    auth = Authenticator(load_settings(jwt_secret=SECRET))
    with pytest.raises(AuthError):
        auth.authenticate({"token": _token(_claims(), key="another-secret-of-enough-length!!")})
    with pytest.raises(AuthError):
        auth.authenticate({"token": jwt.encode(_claims(), None, algorithm="none")})
    with pytest.raises(AuthError, match="token"):
        auth.authenticate({"user": "alice"})


def test_rs256_and_es256_public_keys_verify_and_hs256_cannot_impersonate():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    for private, algorithm in ((rsa_key, "RS256"), (ec_key, "ES256")):
        public = _pem(private)
        auth = Authenticator(load_settings(jwt_public_key=public))
        assert auth.authenticate({"token": _token(_claims(), private, algorithm)}).user == "alice"
        # key confusion: an HS256 token whose HMAC key is the public key's PEM text
        with pytest.raises(AuthError):
            auth.authenticate({"token": _hmac_token(_claims(sub="mallory"), public)})


def _hmac_token(claims: dict, key: str) -> str:
    """HS256 signed by hand: PyJWT itself refuses to use a PEM key as an HMAC secret."""
    import base64
    import hashlib
    import hmac
    import json

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    signing = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    mac = hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_public_key_from_file(tmp_path):
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "key.pem"
    path.write_text(_pem(private))
    auth = Authenticator(load_settings(jwt_public_key=str(path)))
    assert auth.authenticate({"token": _token(_claims(), private, "ES256")}).user == "alice"
    with pytest.raises(ConfigError):
        Authenticator(load_settings(jwt_public_key=str(tmp_path / "missing.pem")))


def test_insecure_mode_takes_a_bare_user_id_and_checks_it():
    auth = Authenticator(load_settings())
    assert auth.authenticate({"user": "bob"}).user == "bob"
    for bad in ("", "has space", "x" * 201, "star*", 42, None):
        with pytest.raises(AuthError):
            auth.authenticate({"user": bad})


def test_public_address_without_auth_is_refused():
    with pytest.raises(ConfigError, match="without auth"):
        check_exposure(load_settings(host="0.0.0.0"))
    check_exposure(load_settings(host="0.0.0.0", jwt_secret=SECRET))
    check_exposure(load_settings(host="127.0.0.1"))
