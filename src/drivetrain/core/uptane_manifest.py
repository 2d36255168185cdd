"""Uptane version reports: what each ECU runs, signed by the ECU, bundled and signed by the
primary (Uptane standard §5.4.2: ECU version report, vehicle version manifest).

Shared by the vehicle (which signs) and the cloud (whose Director verifies before it trusts
an inventory). Documents are TUF-style envelopes ``{"signed": {...}, "signatures": [...]}``
over securesystemslib's canonical JSON, signed and verified with securesystemslib keys.

A manifest is untrusted bytes on the cloud side: :func:`verify_vehicle_manifest` caps its
size, maps every malformed input to :class:`ManifestFormatError`, and refuses a report not
signed by its ECU's registered key, a manifest not signed by the primary, another vehicle's
manifest, and a report counter that does not increase (replay).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from securesystemslib.exceptions import FormatError, UnverifiedSignatureError
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import Key, Signature, Signer

from drivetrain.core.errors import VerificationError, WireFormatError

MAX_MANIFEST_BYTES: Final = 64 * 1024
MAX_ECUS: Final = 64
_HEX64: Final = frozenset("0123456789abcdef")


class ManifestFormatError(WireFormatError):
    """A version report or manifest that cannot be read; names the field."""


class ManifestSignatureError(VerificationError):
    """A version report or manifest not signed by the key it must be signed by."""


@dataclass(frozen=True, slots=True)
class EcuVersionReport:
    """What one ECU runs: serial, image name, length, SHA-256, and a counter that increases
    with every report (so an old report cannot be replayed)."""

    ecu_serial: str
    image: str
    length: int
    sha256: str
    counter: int

    def to_dict(self) -> dict[str, Any]:
        return {"ecu_serial": self.ecu_serial, "installed_image": {
            "filepath": self.image, "fileinfo": {"length": self.length,
                                                 "hashes": {"sha256": self.sha256}}},
            "report_counter": self.counter}

    @classmethod
    def from_dict(cls, data: object) -> EcuVersionReport:
        """Raises ManifestFormatError naming the bad field."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            image = data["installed_image"]
            info = image["fileinfo"]
            report = cls(data["ecu_serial"], image["filepath"], info["length"],
                         info["hashes"]["sha256"], data["report_counter"])
        except (KeyError, TypeError) as e:
            raise ManifestFormatError(f"ECU version report: missing or bad field {e}") from e
        for name, kind in (("ecu_serial", str), ("image", str), ("sha256", str),
                           ("length", int), ("counter", int)):
            value = getattr(report, name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ManifestFormatError(f"ECU version report: {name} {value!r} is not "
                                          f"{kind.__name__}")
        if not 0 <= report.length < 2**40 or not 0 <= report.counter < 2**63:
            raise ManifestFormatError("ECU version report: length or counter out of range")
        if len(report.sha256) != 64 or not set(report.sha256) <= _HEX64:
            raise ManifestFormatError("ECU version report: sha256 is not 64 hex digits")
        return report


def _canonical(signed: dict[str, Any]) -> bytes:
    text = encode_canonical(signed)
    if text is None:  # only when given an output function, which we never pass
        raise TypeError("encode_canonical returned no text")
    return text.encode()


def _envelope(signed: dict[str, Any], signer: Signer) -> dict[str, Any]:
    signature = signer.sign(_canonical(signed))
    return {"signed": signed, "signatures": [signature.to_dict()]}


def _check_signed(envelope: object, key: Key, what: str) -> dict[str, Any]:
    if not isinstance(envelope, dict) or not isinstance(envelope.get("signed"), dict) \
            or not isinstance(envelope.get("signatures"), list):
        raise ManifestFormatError(f"{what}: expected {{'signed': {{...}}, 'signatures': [...]}}")
    signed: dict[str, Any] = envelope["signed"]
    try:
        data = _canonical(signed)
    except FormatError as e:
        raise ManifestFormatError(f"{what}: not canonical JSON: {e}") from e
    for entry in envelope["signatures"][:8]:
        try:
            signature = Signature.from_dict(dict(entry))
        except (KeyError, TypeError, ValueError) as e:
            raise ManifestFormatError(f"{what}: malformed signature: {e}") from e
        if signature.keyid != key.keyid:
            continue
        try:
            key.verify_signature(signature, data)
        except UnverifiedSignatureError as e:
            raise ManifestSignatureError(f"{what}: signature by {key.keyid[:16]} does not "
                                         "verify") from e
        return signed
    raise ManifestSignatureError(f"{what}: not signed by the expected key {key.keyid[:16]}")


def sign_ecu_report(report: EcuVersionReport, signer: Signer) -> dict[str, Any]:
    """The ECU's signed version report."""
    return _envelope(report.to_dict(), signer)


def sign_vehicle_manifest(vin: str, primary_serial: str,
                          signed_reports: Mapping[str, dict[str, Any]],
                          signer: Signer) -> dict[str, Any]:
    """The primary's signed vehicle version manifest, carrying each ECU's signed report."""
    return _envelope({"vin": vin, "primary_ecu_serial": primary_serial,
                      "ecu_version_reports": dict(signed_reports)}, signer)


def verify_vehicle_manifest(
    raw: bytes, *, vin: str, primary_key: Key, ecu_keys: Mapping[str, Key],
    last_counters: Mapping[str, int] | None = None,
) -> list[EcuVersionReport]:
    """The ECU reports of a vehicle version manifest, every signature checked.

    Raises:
        ManifestFormatError: too large, not JSON, or a malformed field.
        ManifestSignatureError: a signature missing or wrong (a forged report or manifest).
        VerificationError: another vehicle's manifest, an unknown ECU, a serial that differs
            from its key's, or a counter not above the last one seen (replay).
    """
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestFormatError(f"vehicle manifest is {len(raw):,} bytes; at most "
                                  f"{MAX_MANIFEST_BYTES:,}")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ManifestFormatError(f"vehicle manifest is not JSON: {e}") from e
    signed = _check_signed(doc, primary_key, "vehicle manifest")
    if signed.get("vin") != vin:
        raise VerificationError(f"vehicle manifest names VIN {signed.get('vin')!r}; it came "
                                f"from {vin}")
    reports = signed.get("ecu_version_reports")
    if not isinstance(reports, dict) or len(reports) > MAX_ECUS:
        raise ManifestFormatError(f"vehicle manifest: ecu_version_reports must be an object "
                                  f"of at most {MAX_ECUS} reports")
    out: list[EcuVersionReport] = []
    for serial, envelope in sorted(reports.items()):
        key = ecu_keys.get(serial)
        if key is None:
            raise VerificationError(f"vehicle manifest reports ECU {serial!r}, which is not "
                                    f"registered for {vin}")
        report = EcuVersionReport.from_dict(_check_signed(envelope, key,
                                                          f"ECU {serial} version report"))
        if report.ecu_serial != serial:
            raise VerificationError(f"ECU {serial}'s report names serial {report.ecu_serial!r}")
        last = (last_counters or {}).get(serial)
        if last is not None and report.counter <= last:
            raise VerificationError(f"ECU {serial} report counter {report.counter} is not above "
                                    f"{last} (replayed report)")
        out.append(report)
    return out
