"""Client secret hashing: scrypt, random salts, constant-time comparison, fail closed."""

from __future__ import annotations

from drivetrain.cloud.infra.credentials import (
    DUMMY_HASH,
    generate_secret,
    hash_secret,
    verify_secret,
)


def test_secret_verifies_against_its_own_hash_only() -> None:
    secret = generate_secret()
    stored = hash_secret(secret)
    assert stored.startswith("scrypt$16384$8$1$")
    assert secret not in stored
    assert verify_secret(secret, stored)
    assert not verify_secret(secret + "x", stored)
    assert not verify_secret(generate_secret(), stored)


def test_same_secret_hashes_differently_each_time() -> None:
    assert hash_secret("same secret") != hash_secret("same secret")


def test_malformed_stored_hash_never_matches() -> None:
    for stored in ["", "plain", "md5$x$y", "scrypt$16384$8$1$!!$!!", "scrypt$a$b$c$d$e"]:
        assert not verify_secret("anything", stored)


def test_dummy_hash_used_for_unknown_clients_matches_nothing() -> None:
    assert not verify_secret("", DUMMY_HASH)
    assert not verify_secret(generate_secret(), DUMMY_HASH)


def test_generated_secrets_are_long_and_distinct() -> None:
    secrets = {generate_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) >= 43 for s in secrets)
