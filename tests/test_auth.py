"""Who a client is: JWT verification with an algorithm allow-list, and insecure loopback mode;
`aud`/`iss`, revoked ids, subscription tokens, and comparing secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tidings.auth import Authenticator, AuthError, Grant, check_exposure, secrets_equal
from tidings.config import ConfigError, load_settings

SECRET = "a-test-secret-that-is-long-enough-for-hs256-and-for-hs512-too!!!"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _token(claims: dict, key=SECRET, algorithm="HS256") -> str:
    return jwt.encode(claims, key, algorithm)


def _claims(**extra) -> dict:
    return {"sub": "alice", "exp": int(time.time()) + 60, **extra}


def _pem(private) -> str:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forged(header: dict, claims: dict, key: bytes | None) -> str:
    """A token built by hand, as an attacker would: PyJWT refuses to make these itself."""
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing}.{_b64(signature)}"


def _hs256() -> Authenticator:
    return Authenticator(load_settings(jwt_secret=SECRET))


# ---- HS256 ------------------------------------------------------------------------------


def test_hs256_token_names_the_user():
    claims = _claims()
    identity = _hs256().authenticate({"token": _token(claims)})
    assert identity.user == "alice" and identity.meta == {}
    assert identity.expires == claims["exp"]


def test_info_claim_becomes_meta():
    identity = _hs256().authenticate({"token": _token(_claims(info={"name": "Alice", "n": 1}))})
    assert identity.meta == {"name": "Alice", "n": 1}


def test_info_claim_that_is_no_object_is_ignored():
    assert _hs256().authenticate({"token": _token(_claims(info="admin"))}).meta == {}


def test_expired_token_is_refused():
    with pytest.raises(AuthError, match="expired"):
        _hs256().authenticate({"token": _token(_claims(exp=int(time.time()) - 5))})


def test_token_without_exp_is_refused():
    with pytest.raises(AuthError, match="exp"):
        _hs256().authenticate({"token": _token({"sub": "alice"})})


def test_token_without_sub_is_refused():
    with pytest.raises(AuthError, match="sub"):
        _hs256().authenticate({"token": _token({"exp": int(time.time()) + 60})})


@pytest.mark.parametrize("sub", ["", "a b", "star*", "x" * 201])
def test_token_whose_sub_is_no_valid_user_id_is_refused(sub):
    with pytest.raises(AuthError):
        _hs256().authenticate({"token": _token(_claims(sub=sub))})


def test_token_not_yet_valid_is_refused():
    with pytest.raises(AuthError):
        _hs256().authenticate({"token": _token(_claims(nbf=int(time.time()) + 300))})


def test_token_signed_with_another_secret_is_refused():
    with pytest.raises(AuthError, match="invalid token"):
        _hs256().authenticate({"token": _token(_claims(), key="another-secret-of-enough-length!!")})


def test_tampered_claims_are_refused():
    header, _, signature = _token(_claims()).split(".")
    body = _b64(json.dumps(_claims(sub="mallory")).encode())
    with pytest.raises(AuthError):
        _hs256().authenticate({"token": f"{header}.{body}.{signature}"})


@pytest.mark.parametrize("token", [
    jwt.encode(_claims(), None, algorithm="none"),
    _forged({"alg": "none", "typ": "JWT"}, _claims(), None),
    _forged({"alg": "None", "typ": "JWT"}, _claims(), None),
])
def test_alg_none_is_refused(token):
    with pytest.raises(AuthError):
        _hs256().authenticate({"token": token})


def test_alg_none_is_refused_even_when_configured():
    auth = Authenticator(load_settings(jwt_secret=SECRET, jwt_algorithms=["none"]))
    with pytest.raises(AuthError):
        auth.authenticate({"token": jwt.encode(_claims(), None, algorithm="none")})
    assert auth.authenticate({"token": _token(_claims())}).user == "alice"


def test_hs512_is_refused_unless_configured():
    token = _token(_claims(), algorithm="HS512")
    with pytest.raises(AuthError):
        _hs256().authenticate({"token": token})
    auth = Authenticator(load_settings(jwt_secret=SECRET, jwt_algorithms=["HS512"]))
    assert auth.authenticate({"token": token}).user == "alice"


@pytest.mark.parametrize("credentials", [
    {}, {"user": "alice"}, {"token": ""}, {"token": None}, {"token": 5}, {"token": "not-a-jwt"},
    {"token": "a.b.c"},
])
def test_missing_or_malformed_token_is_refused(credentials):
    with pytest.raises(AuthError):
        _hs256().authenticate(credentials)


# ---- public keys ------------------------------------------------------------------------


@pytest.mark.parametrize("private, algorithm", [(RSA_KEY, "RS256"), (EC_KEY, "ES256")])
def test_public_key_verifies_its_algorithm(private, algorithm):
    auth = Authenticator(load_settings(jwt_public_key=_pem(private)))
    identity = auth.authenticate({"token": _token(_claims(info={"k": "v"}), private, algorithm)})
    assert identity.user == "alice" and identity.meta == {"k": "v"}


@pytest.mark.parametrize("private, algorithm", [(RSA_KEY, "RS256"), (EC_KEY, "ES256")])
def test_token_signed_by_another_private_key_is_refused(private, algorithm):
    other = (rsa.generate_private_key(public_exponent=65537, key_size=2048)
             if algorithm == "RS256" else ec.generate_private_key(ec.SECP256R1()))
    auth = Authenticator(load_settings(jwt_public_key=_pem(private)))
    with pytest.raises(AuthError):
        auth.authenticate({"token": _token(_claims(), other, algorithm)})


@pytest.mark.parametrize("private", [RSA_KEY, EC_KEY])
def test_hs256_signed_with_the_public_key_is_refused(private):
    """Key confusion: an HS256 token whose HMAC key is the configured public key's PEM text."""
    public = _pem(private)
    auth = Authenticator(load_settings(jwt_public_key=public))
    forged = _forged({"alg": "HS256", "typ": "JWT"}, _claims(sub="mallory"), public.encode())
    with pytest.raises(AuthError):
        auth.authenticate({"token": forged})


def test_hs256_is_refused_when_only_a_public_key_is_configured():
    auth = Authenticator(load_settings(jwt_public_key=_pem(RSA_KEY)))
    with pytest.raises(AuthError):
        auth.authenticate({"token": _token(_claims())})


def test_secret_and_public_key_together_accept_both_and_no_confusion():
    public = _pem(RSA_KEY)
    auth = Authenticator(load_settings(jwt_secret=SECRET, jwt_public_key=public))
    assert auth.authenticate({"token": _token(_claims())}).user == "alice"
    assert auth.authenticate({"token": _token(_claims(), RSA_KEY, "RS256")}).user == "alice"
    forged = _forged({"alg": "HS256", "typ": "JWT"}, _claims(sub="mallory"), public.encode())
    with pytest.raises(AuthError):
        auth.authenticate({"token": forged})


@pytest.mark.parametrize("configured, signer, algorithm", [
    (EC_KEY, RSA_KEY, "RS256"), (RSA_KEY, EC_KEY, "ES256"),
])
def test_token_of_the_other_asymmetric_algorithm_is_refused(configured, signer, algorithm):
    auth = Authenticator(load_settings(jwt_public_key=_pem(configured)))
    with pytest.raises(AuthError):
        auth.authenticate({"token": _token(_claims(), signer, algorithm)})


def test_public_key_from_a_file(tmp_path):
    path = tmp_path / "key.pem"
    path.write_text(_pem(EC_KEY))
    auth = Authenticator(load_settings(jwt_public_key=str(path)))
    assert auth.authenticate({"token": _token(_claims(), EC_KEY, "ES256")}).user == "alice"


def test_missing_public_key_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="jwt_public_key"):
        Authenticator(load_settings(jwt_public_key=str(tmp_path / "missing.pem")))


# ---- insecure mode ----------------------------------------------------------------------


def test_insecure_mode_takes_a_bare_user_id():
    auth = Authenticator(load_settings())
    assert auth.insecure
    assert auth.authenticate({"user": "bob"}).user == "bob"
    assert auth.authenticate({"user": "bob@example.com"}).user == "bob@example.com"
    assert auth.authenticate({"user": "x" * 200}).user == "x" * 200


@pytest.mark.parametrize("bad", ["", "has space", "tab\t", "x" * 201, "star*", "a>b", "#",
                                 "é", 42, None, True, ["bob"]])
def test_insecure_mode_rejects_invalid_user_ids(bad):
    with pytest.raises(AuthError):
        Authenticator(load_settings()).authenticate({"user": bad})


def test_insecure_mode_takes_the_sub_of_an_unchecked_token():
    auth = Authenticator(load_settings())
    assert auth.authenticate({"token": _token(_claims(sub="carol"), key="any-key-at-all-since-nothing-is-checked")}).user == \
        "carol"


def test_auth_configured_is_not_insecure():
    assert not Authenticator(load_settings(jwt_secret=SECRET)).insecure
    assert not Authenticator(load_settings(jwt_public_key=_pem(EC_KEY))).insecure


# ---- exposure ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "gateway.example.com"])
def test_public_address_without_auth_is_refused(host):
    with pytest.raises(ConfigError, match="without auth"):
        check_exposure(load_settings(host=host))


@pytest.mark.parametrize("auth", [{"jwt_secret": SECRET}, {"jwt_public_key": _pem(EC_KEY)}])
def test_public_address_with_auth_is_allowed(auth):
    check_exposure(load_settings(host="0.0.0.0", **auth))


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_without_auth_is_allowed_with_a_warning(host, caplog):
    with caplog.at_level("WARNING", logger="tidings.auth"):
        check_exposure(load_settings(host=host))
    assert "INSECURE MODE" in caplog.text


# ---- aud and iss ------------------------------------------------------------------------


def _strict(**security) -> Authenticator:
    return Authenticator(load_settings(jwt_secret=SECRET, security=security))


def test_without_aud_and_iss_configured_tokens_need_neither():
    assert _hs256().authenticate({"token": _token(_claims(aud="x", iss="y"))}).user == "alice"


def test_a_configured_audience_must_be_in_the_token():
    auth = _strict(jwt_audience="tidings")
    assert auth.authenticate({"token": _token(_claims(aud="tidings"))}).user == "alice"
    assert auth.authenticate({"token": _token(_claims(aud=["web", "tidings"]))}).user == "alice"
    for claims in (_claims(), _claims(aud="billing"), _claims(aud=["web"])):
        with pytest.raises(AuthError, match="aud"):
            auth.authenticate({"token": _token(claims)})


def test_a_configured_issuer_must_be_the_tokens():
    auth = _strict(jwt_issuer="https://id.example.com")
    assert auth.authenticate({"token": _token(_claims(iss="https://id.example.com"))})
    for claims in (_claims(), _claims(iss="https://evil.example")):
        with pytest.raises(AuthError, match="iss"):
            auth.authenticate({"token": _token(claims)})


# ---- revoked ids --------------------------------------------------------------------------


def test_a_token_whose_jti_is_revoked_is_refused():
    auth = Authenticator(load_settings(jwt_secret=SECRET), revoked=lambda jti: jti == "t-1")
    with pytest.raises(AuthError, match="revoked"):
        auth.authenticate({"token": _token(_claims(jti="t-1"))})
    identity = auth.authenticate({"token": _token(_claims(jti="t-2"))})
    assert identity.jti == "t-2"
    assert auth.authenticate({"token": _token(_claims())}).jti is None


# ---- subscription tokens --------------------------------------------------------------------


def _sub_claims(**extra) -> dict:
    return _claims(channel="room:vip", **extra)


def _grant(auth: Authenticator, token, *, user="alice", client="c-1", channel="room:vip") -> Grant:
    return auth.verify_subscription(token, user=user, client=client, channel=channel)


def test_a_subscription_token_grants_its_channel_to_its_user():
    claims = _sub_claims(jti="s-1")
    grant = _grant(_hs256(), _token(claims))
    assert grant == Grant(claims["exp"], "s-1")


def test_a_subscription_token_may_bind_one_connection():
    token = _token(_sub_claims(client="c-1"))
    assert _grant(_hs256(), token, client="c-1")
    with pytest.raises(AuthError, match="another connection"):
        _grant(_hs256(), token, client="c-2")


@pytest.mark.parametrize("claims, kwargs, problem", [
    (lambda: _sub_claims(), {"channel": "room:other"}, "another channel"),
    (lambda: _sub_claims(), {"user": "bob"}, "another user"),
    (lambda: _claims(), {}, "channel"),  # a connection token is no subscription token
    (lambda: _sub_claims(exp=int(time.time()) - 5), {}, "expired"),
    (lambda: {"sub": "alice", "channel": "room:vip"}, {}, "exp"),
])
def test_a_subscription_token_for_something_else_is_refused(claims, kwargs, problem):
    with pytest.raises(AuthError, match=problem):
        _grant(_hs256(), _token(claims()), **kwargs)


@pytest.mark.parametrize("token", [None, "", 5, "not-a-jwt"])
def test_a_missing_or_malformed_subscription_token_is_refused(token):
    with pytest.raises(AuthError):
        _grant(_hs256(), token)


def test_a_subscription_token_signed_otherwise_or_revoked_is_refused():
    with pytest.raises(AuthError, match="invalid"):
        _grant(_hs256(), _token(_sub_claims(), key="another-secret-of-enough-length!!"))
    auth = Authenticator(load_settings(jwt_secret=SECRET), revoked=lambda jti: True)
    with pytest.raises(AuthError, match="revoked"):
        _grant(auth, _token(_sub_claims(jti="s-1")))


def test_subscription_tokens_follow_aud_and_iss_too():
    auth = _strict(jwt_audience="tidings", jwt_issuer="id")
    assert _grant(auth, _token(_sub_claims(aud="tidings", iss="id")))
    with pytest.raises(AuthError):
        _grant(auth, _token(_sub_claims()))


def test_a_subscription_token_cannot_connect():
    with pytest.raises(AuthError, match="subscription token"):
        _hs256().authenticate({"token": _token(_sub_claims())})


# ---- comparing secrets ----------------------------------------------------------------------


def test_secrets_equal_compares_contents():
    assert secrets_equal("k3y", "k3y")
    assert not secrets_equal("k3y", "k3Y")
    assert not secrets_equal("", "k3y")
    assert not secrets_equal("k3y-and-more", "k3y")
