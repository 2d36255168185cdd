"""Signed ECU version reports and vehicle version manifests: a manifest from the vehicle
verifies; a forged, tampered, misdirected, replayed or malformed one is refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ota_world import VIN, ota_world
from securesystemslib.signer import CryptoSigner

from drivetrain.core.errors import VerificationError
from drivetrain.core.uptane_manifest import (
    ManifestFormatError,
    ManifestSignatureError,
    verify_vehicle_manifest,
)
from drivetrain.edge import VehicleConditions

PRIMARY = CryptoSigner.generate_ed25519()
ECU_SIGNERS = {"BMS-001": CryptoSigner.generate_ed25519(),
               "ADAS-001": CryptoSigner.generate_ed25519()}
ECU_KEYS = {s: k.public_key for s, k in ECU_SIGNERS.items()}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    with ota_world(tmp_path_factory.mktemp("manifest")) as world:
        image = world.publish("bms", "2.5.0", 5, hardware_id="bms-v2")
        world.assign(("BMS-001", image))
        world.primary.update(VehicleConditions(parked=True, soc_pct=80))
        return world.primary.version_manifest("BMS-001", PRIMARY, ECU_SIGNERS, counter=7)


def _verify(raw: bytes, **kwargs: object) -> list:  # type: ignore[type-arg]
    options: dict = {"vin": VIN, "primary_key": PRIMARY.public_key, "ecu_keys": ECU_KEYS}  # type: ignore[type-arg]
    options.update(kwargs)
    return verify_vehicle_manifest(raw, **options)


def test_a_vehicle_manifest_verifies_and_says_what_each_ecu_runs(manifest: bytes) -> None:
    reports = {r.ecu_serial: r for r in _verify(manifest)}
    assert reports["BMS-001"].image == "bms/bms-2.5.0.bin" and reports["BMS-001"].counter == 7
    assert reports["ADAS-001"].image == ""  # factory state: nothing installed over the air


def test_forged_ecu_manifest_is_refused(manifest: bytes) -> None:
    doc = json.loads(manifest)
    report = doc["signed"]["ecu_version_reports"]["BMS-001"]
    report["signed"]["installed_image"]["filepath"] = "bms/bms-9.9.9.bin"  # lie about the image
    forger = CryptoSigner.generate_ed25519()
    with pytest.raises(ManifestSignatureError, match="primary|vehicle manifest"):
        _verify(json.dumps(doc).encode())  # the primary's signature no longer holds
    # the attacker re-signs the whole manifest with a key of their own: still refused
    with pytest.raises(ManifestSignatureError, match="not signed by the expected key"):
        _verify(manifest, primary_key=forger.public_key)


def test_ecu_report_signed_by_another_key_is_refused(manifest: bytes) -> None:
    wrong = {**ECU_KEYS, "BMS-001": CryptoSigner.generate_ed25519().public_key}
    with pytest.raises(ManifestSignatureError, match="ECU BMS-001"):
        _verify(manifest, ecu_keys=wrong)


def test_another_vehicles_manifest_and_unknown_ecus_are_refused(manifest: bytes) -> None:
    with pytest.raises(VerificationError, match="names VIN"):
        _verify(manifest, vin="WVWZZZ1JZXW000001")
    with pytest.raises(VerificationError, match="not registered"):
        _verify(manifest, ecu_keys={"BMS-001": ECU_KEYS["BMS-001"]})


def test_a_replayed_report_is_refused(manifest: bytes) -> None:
    with pytest.raises(VerificationError, match="replayed"):
        _verify(manifest, last_counters={"BMS-001": 7})


def test_oversized_manifest_is_refused_before_parsing() -> None:
    with pytest.raises(ManifestFormatError, match="at most"):
        _verify(b"{" * 100_000)


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                 lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c,
                                                                      max_size=4),
                 max_leaves=20).map(lambda d: json.dumps(d).encode()),
))
def test_any_bytes_are_refused_with_a_format_or_verification_error(raw: bytes) -> None:
    with pytest.raises((ManifestFormatError, VerificationError)):
        _verify(raw)


def test_deeply_nested_manifest_is_a_format_error() -> None:
    with pytest.raises(ManifestFormatError):
        _verify(b"[" * 20_000 + b"]" * 20_000)

