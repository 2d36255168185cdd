"""The Uptane primary: fetch both repositories with ngclient, verify, download, install.

The I/O shell around :func:`drivetrain.edge.ota.uptane.full_verification`: one ngclient
Updater per repository (the vehicle's own Director repository and the shared Image
repository), each with its own trusted root provisioned at the factory. An update cycle:

1. preconditions: the vehicle is parked with enough charge (else nothing is fetched);
2. refresh the Director, then the Image repository (TUF client workflow each);
3. full verification of every Director target against the Image repository;
4. download each image through the Image repository's Updater (length and hashes checked
   while it streams, so an endless or altered image stops there); an interrupted download
   resumes where it stopped (:class:`ResumableFetcher`, HTTP Range);
5. install into each ECU's idle slot; the ECU rolls back by itself if the health check fails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import bsdiff4
from securesystemslib.signer import Signer
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Targets
from tuf.api.serialization import DeserializationError
from tuf.ngclient import Updater

from drivetrain.core import tuf_client
from drivetrain.core.errors import StateTransitionError
from drivetrain.core.ota_names import delta_name
from drivetrain.core.uptane_manifest import (
    EcuVersionReport,
    sign_ecu_report,
    sign_vehicle_manifest,
)
from drivetrain.edge.ota.resume import ResumableFetcher
from drivetrain.edge.ota.slots import AbEcu, InstallOutcome
from drivetrain.edge.ota.uptane import (
    EcuIdentity,
    VerifiedInstall,
    check_delegated_hardware,
    full_verification,
)

#: Least state of charge an install starts with, percent.
MIN_SOC_PCT: Final = 30.0


class PreconditionError(StateTransitionError):
    """The vehicle is not in a state to install (moving, low charge); names the condition."""


@dataclass(frozen=True, slots=True)
class VehicleConditions:
    """What the vehicle reports about itself before an install."""

    parked: bool
    soc_pct: float

    def check(self, min_soc_pct: float = MIN_SOC_PCT) -> None:
        """Raises PreconditionError naming the first unmet condition."""
        if not self.parked:
            raise PreconditionError("update deferred: the vehicle is not parked")
        if self.soc_pct < min_soc_pct:
            raise PreconditionError(f"update deferred: charge {self.soc_pct:.0f} % is below "
                                    f"{min_soc_pct:.0f} %")


@dataclass(frozen=True, slots=True)
class RepositoryUrls:
    """Where the primary finds its two repositories."""

    director_metadata: str
    image_metadata: str
    image_targets: str

    @classmethod
    def under(cls, base_url: str, vin: str) -> RepositoryUrls:
        """The platform's layout: ``{base}/director/{vin}/metadata``, ``{base}/image/...``."""
        base = base_url.rstrip("/")
        return cls(f"{base}/director/{vin}/metadata", f"{base}/image/metadata",
                   f"{base}/image/targets")


class UptanePrimary:
    """The primary ECU of ``vin``: its metadata under ``state_dir``, its ECUs ``ecus``."""

    def __init__(self, vin: str, state_dir: Path, urls: RepositoryUrls,
                 ecus: Sequence[AbEcu]) -> None:
        self.vin = vin
        self.state_dir = Path(state_dir)
        self.urls = urls
        self.ecus = {e.serial: e for e in ecus}
        #: Image downloads resume where an interrupted one stopped (HTTP Range).
        self.fetcher = ResumableFetcher(self.state_dir / "parts", urls.image_targets,
                                        socket_timeout=tuf_client.REQUEST_TIMEOUT_S)

    @property
    def _director_dir(self) -> Path:
        return self.state_dir / "director"

    @property
    def _image_dir(self) -> Path:
        return self.state_dir / "image"

    def provision(self, director_root: bytes, image_root: bytes) -> None:
        """Install both trusted roots (factory step)."""
        for folder, root in ((self._director_dir, director_root), (self._image_dir, image_root)):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "root.json").write_bytes(root)

    def version_manifest(self, primary_serial: str, signer: Signer,
                         ecu_signers: Mapping[str, Signer], counter: int) -> bytes:
        """The signed vehicle version manifest (Uptane §5.4.2): each ECU's report of what it
        runs, signed by that ECU, bundled and signed by the primary. ``counter`` must increase
        with every manifest (the cloud refuses a replayed one)."""
        reports: dict[str, dict[str, Any]] = {}
        for serial, ecu in sorted(self.ecus.items()):
            running = ecu.running()
            report = EcuVersionReport(
                serial, running.target if running else "", running.length if running else 0,
                running.sha256 if running else "0" * 64, counter)
            reports[serial] = sign_ecu_report(report, ecu_signers[serial])
        manifest = sign_vehicle_manifest(self.vin, primary_serial, reports, signer)
        return json.dumps(manifest, sort_keys=True).encode()

    def identities(self) -> dict[str, EcuIdentity]:
        return {serial: ecu.identity() for serial, ecu in self.ecus.items()}

    def check(self) -> list[VerifiedInstall]:
        """Refresh both repositories and return the fully verified installs (may be none).

        Raises:
            TufUpdateError / TufTransportError: a repository failed TUF verification or could
                not be reached.
            UptaneVerificationError: the Director's orders break an Uptane rule.
        """
        installs, _ = self._verified()
        return installs

    def _verified(self) -> tuple[list[VerifiedInstall], Updater]:
        director = tuf_client.updater(self._director_dir, self.urls.director_metadata)
        image = tuf_client.updater(self._image_dir, self.urls.image_metadata,
                                   self.state_dir / "downloads", self.urls.image_targets,
                                   fetcher=self.fetcher)
        try:
            director.refresh()
            # ngclient persists only metadata it verified: the Director's top-level targets
            targets = Metadata[Targets].from_bytes(
                (self._director_dir / "targets.json").read_bytes()).signed
            image.refresh()
            installs = full_verification(targets, image.get_targetinfo, self.identities())
            check_delegated_hardware(self._verified_image_role("targets"),
                                     self._verified_image_role, installs)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError,
                tuf_errors.StorageError, DeserializationError) as e:
            raise tuf_client.translate(e) from e
        return installs, image

    def _verified_image_role(self, role: str) -> Targets:
        """A targets role of the Image repository as ngclient kept it: it writes a role's
        file only after verifying it, and the lookups of this cycle loaded every role that
        signs an ordered image (so a role absent here signs none of them)."""
        path = self._image_dir / f"{quote(role, '')}.json"
        if not path.is_file():
            return Targets(targets={})
        return Metadata[Targets].from_bytes(path.read_bytes()).signed

    def update(self, conditions: VehicleConditions) -> list[InstallOutcome]:
        """One update cycle (see the module doc); returns each ECU's outcome.

        Raises:
            PreconditionError: not parked or too little charge (nothing fetched).
            TufUpdateError / TufTransportError / UptaneVerificationError: as :meth:`check`;
                nothing is installed.
            ImageHashError: an ECU refused the bytes (partial verification).
        """
        conditions.check()
        installs, image = self._verified()
        outcomes: list[InstallOutcome] = []
        for order in installs:
            ecu = self.ecus[order.ecu_serial]
            running = ecu.running()
            if running is not None and running.sha256 == order.sha256:
                outcomes.append(InstallOutcome(ecu.serial, "unchanged", "already running",
                                               running, running))
                continue
            data, downloaded, via_delta = self._fetch(image, order, ecu)
            outcome = ecu.install(data, order)
            outcomes.append(replace(outcome, downloaded_bytes=downloaded, via_delta=via_delta))
        return outcomes

    def _fetch(self, image: Updater, order: VerifiedInstall,
               ecu: AbEcu) -> tuple[bytes, int, bool]:
        """The ordered image's bytes, how many were downloaded, and whether through a delta:
        the delta from what the ECU runs when the Image repository offers one and the rebuilt
        image has the ordered length and SHA-256, else the full image."""
        running, current = ecu.running(), ecu.image_bytes()
        try:
            if running is not None and current is not None:
                info = image.get_targetinfo(delta_name(order.target, running.sha256))
                if info is not None and info.custom.get("delta_of") == order.target:
                    path = image.find_cached_target(info) or image.download_target(info)
                    try:
                        rebuilt = bsdiff4.patch(current, Path(path).read_bytes())
                    except (ValueError, OSError):
                        rebuilt = b""  # a delta that does not apply: the full image instead
                    if len(rebuilt) == order.length and \
                            hashlib.sha256(rebuilt).hexdigest() == order.sha256:
                        return rebuilt, info.length, True
            info = image.get_targetinfo(order.target)
            if info is None:
                raise tuf_client.TufUpdateError(f"image {order.target} vanished")
            path = image.find_cached_target(info) or image.download_target(info)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as e:
            raise tuf_client.translate(e) from e
        return Path(path).read_bytes(), info.length, False
