"""The vehicle's OTA client: TUF per repository (python-tuf ngclient), Uptane full
verification on the primary, A/B-slot ECUs with automatic rollback.

Public surface: :mod:`tuf_client` (one repository; the conformance CLI), :class:`UptanePrimary`,
:class:`RepositoryUrls`, :class:`VehicleConditions`, :class:`AbEcu`, :class:`HealthResult`,
:func:`full_verification` and the refusals it raises; :class:`OtaUpdater` (the agent's
answer to an ``ota.update`` notice) with :class:`ManifestSigning`;
:class:`ResumableFetcher` (image downloads that resume).
"""

from drivetrain.core import tuf_client
from drivetrain.core.tuf_client import TufTransportError, TufUpdateError
from drivetrain.edge.ota.notice import ManifestSigning, OtaUpdater
from drivetrain.edge.ota.primary import (
    PreconditionError,
    RepositoryUrls,
    UptanePrimary,
    VehicleConditions,
)
from drivetrain.edge.ota.resume import ResumableFetcher
from drivetrain.edge.ota.slots import AbEcu, HealthResult, ImageHashError, InstallOutcome, SlotImage
from drivetrain.edge.ota.uptane import (
    DelegationHardwareError,
    DirectorImageMismatchError,
    EcuIdentity,
    EcuMismatchError,
    ImageRollbackError,
    UptaneVerificationError,
    VerifiedInstall,
    full_verification,
)

__all__ = [
    "AbEcu",
    "DelegationHardwareError",
    "DirectorImageMismatchError",
    "EcuIdentity",
    "EcuMismatchError",
    "HealthResult",
    "ImageHashError",
    "ImageRollbackError",
    "InstallOutcome",
    "ManifestSigning",
    "OtaUpdater",
    "PreconditionError",
    "RepositoryUrls",
    "ResumableFetcher",
    "SlotImage",
    "TufTransportError",
    "TufUpdateError",
    "UptanePrimary",
    "UptaneVerificationError",
    "VehicleConditions",
    "VerifiedInstall",
    "full_verification",
    "tuf_client",
]
