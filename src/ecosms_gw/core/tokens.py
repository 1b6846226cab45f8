"""API access tokens (OAuth 2.0 client credentials, seed 1.1): signed JWTs that name the
account and a fingerprint of its API secret, so that changing the secret or removing the
account ends every token issued before. Pure: the signing key comes from the store."""

from __future__ import annotations

import hashlib
import time
from typing import NamedTuple

import jwt

_ALGORITHM = "HS256"


def fingerprint(secret_hash: str) -> str:
    return hashlib.sha256(secret_hash.encode()).hexdigest()[:16]


def issue(key: str, account_code: str, secret_hash: str, ttl_s: int, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return jwt.encode({"sub": account_code, "fpr": fingerprint(secret_hash), "iat": issued,
                       "exp": issued + ttl_s, "scope": "basic"}, key, algorithm=_ALGORITHM)


class Claims(NamedTuple):
    account: str  # its code
    fingerprint: str  # of the account's API secret when the token was issued
    expires: float  # epoch seconds


def read(key: str, token: str) -> Claims | None:
    """The claims of a valid, unexpired token, else None."""
    try:
        claims = jwt.decode(token, key, algorithms=[_ALGORITHM], options={"require": ["sub", "fpr", "exp"]})
    except jwt.PyJWTError:
        return None
    return Claims(str(claims["sub"]), str(claims["fpr"]), float(claims["exp"]))
