"""Names both sides of OTA derive on their own: where the Image repository publishes the
delta from one image to another, so a vehicle finds it from what it already runs."""

from __future__ import annotations


def delta_name(target: str, source_sha256: str) -> str:
    """The target name of the bsdiff4 delta to ``target`` from the image whose SHA-256 is
    ``source_sha256``."""
    return f"deltas/{source_sha256[:32]}/{target}.bsdiff"
