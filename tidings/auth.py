"""Who a client is: a JWT (`sub` is the user id) or, on loopback without auth, a bare user id;
and subscription tokens: a JWT that lets one user (optionally one connection) into one channel.

Algorithms are an explicit allow-list taken from the configured key type, so a token cannot
pick its own verification (no `none`, no HS256 signed with a public key). With
`security.jwt_audience` / `jwt_issuer` set, every token must carry that `aud` / `iss`. A
token whose `jti` is revoked is refused. The two kinds cannot stand in for each other: a
subscription token names a `channel`, a connection token must not. Messages never quote the
token, and secrets are compared in constant time (`secrets_equal`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import jwt

from tidings.channels import valid_user_id
from tidings.config import ConfigError, Settings

log = logging.getLogger("tidings.auth")


class AuthError(Exception):
    """The credentials were refused; the message says why (never the secret)."""


@dataclass(slots=True, frozen=True)
class Identity:
    user: str
    expires: int | None = None  # `exp` of the token, seconds since the Unix epoch
    meta: dict = field(default_factory=dict)  # the token's `info` claim, shown in presence
    jti: str | None = None  # the token's id, by which it can be revoked


@dataclass(slots=True, frozen=True)
class Grant:
    """What a subscription token allows: until when, and the id it can be revoked by."""

    expires: int
    jti: str | None = None


def secrets_equal(given: str, expected: str) -> bool:
    """Compare in time that depends on neither the contents nor the lengths."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(),
                               hashlib.sha256(expected.encode()).digest())


class Authenticator:
    def __init__(self, settings: Settings, revoked: Callable[[str], bool] = lambda jti: False):
        self.insecure = not settings.auth_enabled
        self.audience = settings.security.jwt_audience
        self.issuer = settings.security.jwt_issuer
        self._revoked = revoked
        self._keys: list[tuple[object, list[str]]] = []
        if settings.jwt_secret:
            algorithms = [a for a in settings.jwt_algorithms if a.startswith("HS")] or ["HS256"]
            self._keys.append((settings.jwt_secret, algorithms))
        if settings.jwt_public_key:
            pem = _read_key(settings.jwt_public_key)
            algorithms = [
                a for a in settings.jwt_algorithms if a.startswith(("RS", "ES", "PS"))
            ] or ["RS256", "ES256"]
            self._keys.append((pem, algorithms))

    def authenticate(self, credentials: dict) -> Identity:
        """Identity from a connect command's `token` (or `user` in insecure mode)."""
        if self.insecure:
            user = credentials.get("user")
            if user is None and isinstance(credentials.get("token"), str):
                user = _unverified_sub(credentials["token"])
            if not valid_user_id(user):
                raise AuthError("give 'user': a user id of 1 to 200 printable characters")
            return Identity(user)
        token = credentials.get("token")
        if not isinstance(token, str) or not token:
            raise AuthError("a 'token' (JWT) is required")
        return self.verify(token)

    def verify(self, token: str) -> Identity:
        claims = self._claims(token, "token")
        if "channel" in claims:
            raise AuthError("a subscription token cannot connect")
        user = claims["sub"]
        if not valid_user_id(user):
            raise AuthError("token 'sub' is not a valid user id")
        info = claims.get("info")
        return Identity(user, int(claims["exp"]), info if isinstance(info, dict) else {},
                        _jti(claims))

    def verify_subscription(self, token: object, *, user: str, client: str,
                            channel: str) -> Grant:
        """The grant of a subscription token for `channel`, held by `user` on `client`."""
        if not isinstance(token, str) or not token:
            raise AuthError(f"{channel} needs a subscription token ('token')")
        claims = self._claims(token, "subscription token", "channel")
        if claims["channel"] != channel:
            raise AuthError("the subscription token is for another channel")
        if claims["sub"] != user:
            raise AuthError("the subscription token is for another user")
        if "client" in claims and claims["client"] != client:
            raise AuthError("the subscription token is for another connection")
        return Grant(int(claims["exp"]), _jti(claims))

    def _claims(self, token: str, kind: str, *required: str) -> dict:
        """Verified claims (unverified in insecure mode), or AuthError naming what failed."""
        needed = ["sub", "exp", *required]
        if self.insecure:
            try:
                claims = jwt.decode(token, options={"verify_signature": False,
                                                    "require": needed})
            except jwt.InvalidTokenError as exc:
                raise AuthError(f"invalid {kind}: {exc}") from None
            return self._unrevoked(claims, kind)
        if self.audience is not None:
            needed.append("aud")
        if self.issuer is not None:
            needed.append("iss")
        last_error = "no key configured"
        for key, algorithms in self._keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=algorithms, audience=self.audience,
                    issuer=self.issuer,
                    options={"require": needed, "verify_aud": self.audience is not None},
                )
            except jwt.ExpiredSignatureError:
                raise AuthError(f"{kind} expired") from None
            except jwt.InvalidAudienceError:
                raise AuthError(f"invalid {kind}: its 'aud' is not {self.audience!r}") from None
            except jwt.InvalidIssuerError:
                raise AuthError(f"invalid {kind}: its 'iss' is not {self.issuer!r}") from None
            except (jwt.InvalidTokenError, jwt.InvalidKeyError) as exc:
                # InvalidKeyError: a token of the other key family (RS256 against an EC key)
                last_error = str(exc)
                continue
            return self._unrevoked(claims, kind)
        raise AuthError(f"invalid {kind}: {last_error}")

    def _unrevoked(self, claims: dict, kind: str) -> dict:
        jti = _jti(claims)
        if jti is not None and self._revoked(jti):
            raise AuthError(f"{kind} revoked")
        return claims


def _jti(claims: dict) -> str | None:
    jti = claims.get("jti")
    return jti if isinstance(jti, str) and jti else None


def _unverified_sub(token: str) -> object:
    """In insecure mode a client may still send a JWT; its `sub` is taken without checking."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("sub")
    except jwt.InvalidTokenError:
        return None


def _read_key(value: str) -> str:
    if "-----BEGIN" in value:
        return value
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"jwt_public_key: no PEM text and no such file: {value}")
    return path.read_text()


def check_exposure(settings: Settings) -> None:
    """Refuse a public address without auth; warn loudly about insecure loopback mode."""
    if settings.auth_enabled:
        return
    if not settings.loopback_only:
        raise ConfigError(
            f"refusing to listen on {settings.host} without auth: set jwt_secret or "
            "jwt_public_key (TIDINGS_JWT_SECRET / TIDINGS_JWT_PUBLIC_KEY), or bind to 127.0.0.1"
        )
    log.warning(
        "INSECURE MODE: no JWT auth configured; clients name themselves with a bare user id. "
        "Accepted only because the node is bound to loopback (%s).", settings.host,
    )
