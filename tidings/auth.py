"""Who a client is: a JWT (`sub` is the user id) or, on loopback without auth, a bare user id.

Algorithms are an explicit allow-list taken from the configured key type, so a token cannot
pick its own verification (no `none`, no HS256 signed with a public key).
"""

from __future__ import annotations

import logging
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


class Authenticator:
    def __init__(self, settings: Settings):
        self.insecure = not settings.auth_enabled
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
        last_error = "no key configured"
        for key, algorithms in self._keys:
            try:
                claims = jwt.decode(
                    token, key, algorithms=algorithms,
                    options={"require": ["sub", "exp"], "verify_aud": False},
                )
            except jwt.ExpiredSignatureError:
                raise AuthError("token expired") from None
            except (jwt.InvalidTokenError, jwt.InvalidKeyError) as exc:
                # InvalidKeyError: a token of the other key family (RS256 against an EC key)
                last_error = str(exc)
                continue
            user = claims["sub"]
            if not valid_user_id(user):
                raise AuthError("token 'sub' is not a valid user id")
            info = claims.get("info")
            return Identity(user, int(claims["exp"]), info if isinstance(info, dict) else {})
        raise AuthError(f"invalid token: {last_error}")


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
