"""Ed25519 keys and signatures: what vehicles sign and what they trust.

Every vehicle has its own key pair (``drivetrain fleet provision``) and signs what it sends; the
cloud has a key pair of its own and signs everything a vehicle acts on (desired state,
campaigns, commands). Ed25519 (RFC 8032) via ``cryptography``: small keys (32 bytes), small
signatures (64 bytes), fast verification, no parameters to get wrong.

A key id is the first 16 hex digits of SHA-256 over the raw public key, so a message can name
its signer without carrying the key.

The cloud's key pair also serves key agreement for vehicle sessions (``drivetrain.core.wire.
session``): its X25519 form is the birational map of the same key (RFC 7748 §4.1; libsodium's
``crypto_sign_ed25519_pk_to_curve25519``), so a vehicle that trusts the cloud's Ed25519 key
already knows the X25519 key to agree with, and nothing new is provisioned.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from drivetrain.core.errors import KeyFormatError, SignatureError

SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
_P25519 = 2**255 - 19


def key_id_of(public_raw: bytes) -> str:
    """The id of a raw 32-byte Ed25519 public key: 16 hex digits of its SHA-256."""
    return hashlib.sha256(public_raw).hexdigest()[:16]


@dataclass(frozen=True)
class VerifyKey:
    """An Ed25519 public key that checks signatures."""

    raw: bytes
    _key: Ed25519PublicKey = field(repr=False, compare=False, hash=False)

    @classmethod
    def from_raw(cls, raw: bytes) -> VerifyKey:
        """Build from the 32 raw bytes.

        Raises:
            KeyFormatError: not 32 bytes.
        """
        if len(raw) != PUBLIC_KEY_BYTES:
            raise KeyFormatError(
                f"Ed25519 public key is {len(raw)} bytes; expected {PUBLIC_KEY_BYTES}"
            )
        return cls(bytes(raw), Ed25519PublicKey.from_public_bytes(raw))

    @classmethod
    def from_base64(cls, text: str) -> VerifyKey:
        """Build from standard base64 of the raw bytes (how keys travel in JSON and the API).

        Raises:
            KeyFormatError: not base64, or not 32 bytes once decoded.
        """
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as e:
            raise KeyFormatError(f"public key {text[:24]!r}... is not valid base64") from e
        return cls.from_raw(raw)

    @cached_property
    def key_id(self) -> str:
        """16 hex digits naming this key (see ``key_id_of``); computed once per key, as every
        sealed envelope names it."""
        return key_id_of(self.raw)

    def to_base64(self) -> str:
        """Standard base64 of the raw 32 bytes."""
        return base64.b64encode(self.raw).decode("ascii")

    @cached_property
    def x25519_public(self) -> X25519PublicKey:
        """This key as an X25519 public key: Montgomery u = (1 + y) / (1 - y) of its
        Edwards y (RFC 7748 §4.1).

        Raises:
            KeyFormatError: a degenerate key (y = 1) with no X25519 form.
        """
        y = int.from_bytes(self.raw, "little") & ((1 << 255) - 1)
        if (1 - y) % _P25519 == 0:
            raise KeyFormatError(f"key {self.key_id} has no X25519 form")
        u = (1 + y) * pow(1 - y, _P25519 - 2, _P25519) % _P25519
        return X25519PublicKey.from_public_bytes(u.to_bytes(32, "little"))

    def verify(self, signature: bytes, data: bytes | memoryview) -> None:
        """Check that ``signature`` was made over ``data`` by this key's private half.

        Raises:
            SignatureError: the signature does not verify (wrong key, altered data).
        """
        try:
            self._key.verify(bytes(signature), bytes(data))
        except InvalidSignature as e:
            raise SignatureError(f"signature does not verify with key {self.key_id}") from e


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key. Never logged or printed; ``repr`` shows only the key id."""

    _key: Ed25519PrivateKey = field(repr=False, compare=False, hash=False)
    verify_key: VerifyKey

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key pair."""
        return cls._wrap(Ed25519PrivateKey.generate())

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """The key pair derived from a 32-byte seed (deterministic, for simulated fleets).

        Raises:
            KeyFormatError: the seed is not 32 bytes.
        """
        if len(seed) != 32:
            raise KeyFormatError(f"Ed25519 seed is {len(seed)} bytes; expected 32")
        return cls._wrap(Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM private key.

        Raises:
            KeyFormatError: not PEM, encrypted, or not an Ed25519 key.
        """
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as e:
            raise KeyFormatError(f"cannot read Ed25519 private key from PEM: {e}") from e
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFormatError(
                f"PEM holds a {type(key).__name__}; expected an Ed25519 private key"
            )
        return cls._wrap(key)

    @classmethod
    def _wrap(cls, key: Ed25519PrivateKey) -> SigningKey:
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return cls(key, VerifyKey.from_raw(raw))

    @property
    def key_id(self) -> str:
        """The id of the public half."""
        return self.verify_key.key_id

    def sign(self, data: bytes | memoryview) -> bytes:
        """The 64-byte Ed25519 signature of ``data``."""
        return self._key.sign(bytes(data))

    def x25519_private(self) -> X25519PrivateKey:
        """This key as an X25519 private key: the clamped scalar Ed25519 signs with (the
        first half of SHA-512 of the seed; X25519 clamps it), the private half of
        ``VerifyKey.x25519_public``."""
        return X25519PrivateKey.from_private_bytes(hashlib.sha512(self._seed()).digest()[:32])

    def derive_secret(self, purpose: bytes) -> bytes:
        """32 bytes derived from this private key for ``purpose`` (HKDF-SHA256): a key that
        only the holder of this one has, e.g. to encrypt what it stores."""
        return HKDF(hashes.SHA256(), 32, salt=None, info=purpose).derive(self._seed())

    def _seed(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (write it with file mode 0600)."""
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
