"""Client secrets: generation, scrypt hashing and constant-time verification (pure, stdlib).

A stored hash reads ``scrypt$<n>$<r>$<p>$<salt b64>$<digest b64>`` so the cost parameters can
be raised later without invalidating existing secrets. Verification recomputes the digest and
compares with :func:`hmac.compare_digest`; for an unknown client the caller verifies against
:data:`DUMMY_HASH` so a wrong client id costs the same time as a wrong secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SCRYPT_N = 2**14  # CPU/memory cost: ~16 MiB and ~50 ms per check on a laptop core
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
DIGEST_BYTES = 32
SECRET_BYTES = 32


def generate_secret() -> str:
    """A new random client secret (256 bits, URL-safe base64, 43 characters)."""
    return secrets.token_urlsafe(SECRET_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(secret: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=DIGEST_BYTES, maxmem=64 * 2**20
    )


def hash_secret(secret: str) -> str:
    """The storable scrypt hash of ``secret`` with a fresh random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(secret, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored_hash: str) -> bool:
    """True when ``secret`` matches ``stored_hash``; compared in constant time.

    A malformed ``stored_hash`` never matches (fails closed).
    """
    try:
        scheme, n, r, p, salt_b64, digest_b64 = stored_hash.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        expected = base64.b64decode(digest_b64, validate=True)
        actual = _scrypt(secret, salt, int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


# Verified against when the client id is unknown, to keep the timing of both failures alike.
DUMMY_HASH = (
    f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(b'drivetrain-dummy')}${_b64(bytes(32))}"
)
