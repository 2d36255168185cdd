"""Names both sides of OTA derive on their own: where the Image repository publishes the
delta from one image to another, so a vehicle finds it from what it already runs; and the
field of a supplier's delegation that names the hardware it may sign images for."""

from __future__ import annotations

from typing import Final

#: The field of a delegation (signed by the top-level targets role with the rest of it) that
#: lists the hardware ids a supplier's role may sign images for; absent or empty: any.
HARDWARE_IDS_FIELD: Final = "x-drivetrain-hardware-ids"


def delta_name(target: str, source_sha256: str) -> str:
    """The target name of the bsdiff4 delta to ``target`` from the image whose SHA-256 is
    ``source_sha256``."""
    return f"deltas/{source_sha256[:32]}/{target}.bsdiff"
