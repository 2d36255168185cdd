"""Publishing an image: the one function the ``drivetrain ota image add`` command and the
``POST /v1/ota/images`` route both call, so an image is checked, signed and given its deltas
the same way whichever door it comes through.

Checks come first and change nothing: the fields, the supplier's delegation (paths and
hardware ids), the release counter (never below the highest one published for the same
hardware id and kind — Uptane's anti-rollback counter only protects vehicles if the
repository never signs a lower one as the newest build), and each delta source (published,
same hardware id). Then the image is signed (into the supplier's delegated role when one is
named) and a bsdiff4 delta is published from each source; a delta that would not be smaller
than the full image is skipped and reported.

Without explicit sources, the sources are chosen from the fleet: the ``common_sources`` software
versions most often installed on ECUs of the image's hardware id across the tenant's twins
(:func:`drivetrain.cloud.twins.software_version_counts`) among those whose image the repository
holds (same hardware id and kind, under the tenant's namespace) become the delta sources. The
result says how many ECUs run each source and the bytes the deltas save.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.ota.images import (
    DeltaInfo,
    ImageInfo,
    ImageRepository,
    check_image_fields,
)
from drivetrain.cloud.ota.repository import MAX_IMAGE_BYTES
from drivetrain.cloud.twins import software_version_counts
from drivetrain.core.errors import (
    BadInputError,
    ConflictError,
    PayloadTooLargeError,
    PermissionDeniedError,
)

MAX_DELTA_SOURCES: Final = 8
#: How many of the most installed versions get a delta when no source is named
DEFAULT_COMMON_SOURCES: Final = 3


class ReleaseCounterRollbackError(ConflictError):
    """An image whose release counter is below one already published for its hardware."""


class ImageTooLargeError(PayloadTooLargeError):
    """An image over the repository's size cap."""


@dataclass(frozen=True, slots=True)
class ImageUpload:
    """What a publisher sends: the bytes and the image's Uptane attributes."""

    name: str
    data: bytes
    hardware_id: str
    release_counter: int
    version: str
    kind: str = "firmware"
    #: the supplier whose delegated role signs it (None: the top-level targets role)
    supplier: str | None = None
    #: published images vehicles run now, to publish a delta from each
    delta_from: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CommonSource:
    """A software version installed on ECUs of the image's hardware id: how many run it, and
    the published image of that version (the delta's source; only versions whose image is
    published are chosen)."""

    version: str
    ecus: int
    image: str

    def to_dict(self) -> dict[str, object]:
        return {"version": self.version, "ecus": self.ecus, "image": self.image}


@dataclass(frozen=True, slots=True)
class Published:
    """The published image, its deltas, and the sources whose delta was not worth it."""

    image: ImageInfo
    deltas: tuple[DeltaInfo, ...] = ()
    skipped: tuple[str, ...] = field(default=())
    #: the fleet's most installed versions, when the delta sources were chosen from them
    common: tuple[CommonSource, ...] = ()

    @property
    def bytes_saved(self) -> int:
        """Bytes one download of each delta saves against the full image, summed."""
        return sum(d.bytes_saved for d in self.deltas)

    @property
    def fleet_bytes_saved(self) -> int:
        """Bytes saved if every ECU counted on a chosen source downloads its delta."""
        ecus = {c.image: c.ecus for c in self.common if c.image is not None}
        return sum(ecus.get(d.source, 0) * d.bytes_saved for d in self.deltas)


#: Most distinct software versions of one hardware id counted when choosing delta sources.
_VERSIONS_COUNTED = 1024


def common_sources(session: Session, images: ImageRepository, upload: ImageUpload, *,
                   tenant: str | None, namespace: str = "", limit: int) -> list[CommonSource]:
    """The ``limit`` versions most installed on ECUs built for ``upload.hardware_id`` across
    ``tenant``'s twins (every tenant's when None) among those whose full image is published
    (same hardware id and kind, under ``namespace``; the highest release counter when
    several), other than the upload's own version, each with that image."""
    if limit <= 0:
        return []
    held: dict[str, ImageInfo] = {}
    for info in images.images():
        if (info.kind == upload.kind and info.hardware_id == upload.hardware_id
                and info.name.startswith(namespace) and info.name != upload.name):
            best = held.get(info.version)
            if best is None or info.release_counter > best.release_counter:
                held[info.version] = info
    # versions whose image is not held cannot be a delta source, so they take no place among
    # the ``limit``: count every version the fleet runs (a few hundred at most per hardware id)
    counts = software_version_counts(session, upload.hardware_id, tenant=tenant,
                                     limit=_VERSIONS_COUNTED)
    chosen = [CommonSource(version, ecus, held[version].name)
              for version, ecus in counts if version != upload.version and version in held]
    return chosen[:limit]


def check_upload(images: ImageRepository, upload: ImageUpload, *,
                 namespace: str = "") -> None:
    """Every check :func:`publish_image` makes before it signs anything. With ``namespace``
    (a tenant's ``<tenant>/``) the name must lie under it and the release counter is compared
    with the images under it only.

    Raises:
        ImageTooLargeError: over :data:`MAX_IMAGE_BYTES`.
        BadInputError: a bad field, an image outside the supplier's delegation, a delta
            source that is a delta or built for other hardware.
        NotFoundError: no such supplier, or a delta source not published.
        ReleaseCounterRollbackError: the release counter is below one published for the
            same hardware id and kind.
    """
    if not upload.name.startswith(namespace):
        raise PermissionDeniedError(f"name {upload.name!r}: expected a name under "
                                    f"{namespace!r}")
    if len(upload.data) > MAX_IMAGE_BYTES:
        raise ImageTooLargeError(f"image {upload.name} is {len(upload.data):,} bytes; at most "
                                 f"{MAX_IMAGE_BYTES:,}")
    if not upload.data:
        raise BadInputError(f"image {upload.name}: no bytes; expected the image file")
    check_image_fields(upload.hardware_id, upload.release_counter, upload.version, upload.kind)
    if upload.kind == "delta":
        raise BadInputError("kind 'delta': deltas are made by the repository (delta_from), "
                            "not uploaded")
    if upload.supplier is not None:
        images.check_supplier_image(upload.supplier, upload.name, upload.hardware_id)
    newest = max((i for i in images.images() if i.kind == upload.kind
                  and i.hardware_id == upload.hardware_id and i.name != upload.name
                  and i.name.startswith(namespace)),
                 key=lambda i: i.release_counter, default=None)
    if newest is not None and upload.release_counter < newest.release_counter:
        raise ReleaseCounterRollbackError(
            f"release_counter {upload.release_counter} is below {newest.release_counter}, "
            f"that of {newest.name} already published for hardware {upload.hardware_id!r}; "
            "expected at least that (a lower counter would be a rollback)")
    if len(upload.delta_from) > MAX_DELTA_SOURCES:
        raise BadInputError(f"delta_from: {len(upload.delta_from)} sources; at most "
                            f"{MAX_DELTA_SOURCES}")
    for source in upload.delta_from:
        info = images.info(source)
        if info.kind == "delta" or info.hardware_id != upload.hardware_id:
            raise BadInputError(f"delta_from {source!r}: a {info.kind} for hardware "
                                f"{info.hardware_id!r}; expected a full image for "
                                f"{upload.hardware_id!r}")


def publish_image(images: ImageRepository, upload: ImageUpload, *, namespace: str = "",
                  now: datetime | None = None, session: Session | None = None,
                  tenant: str | None = None,
                  common: int = DEFAULT_COMMON_SOURCES) -> Published:
    """Check (see :func:`check_upload`), sign and publish ``upload``, then a delta from each
    of its ``delta_from`` sources. With no ``delta_from`` and a ``session`` on the twins,
    the sources are the ``common`` versions most installed on the hardware id across
    ``tenant``'s fleet whose image is published (see :func:`common_sources`).

    Raises:
        the errors of :func:`check_upload`, and BadInputError when ``name`` is already
        published with other content, or ``common`` outside 0..MAX_DELTA_SOURCES.
    """
    if not 0 <= common <= MAX_DELTA_SOURCES:
        raise BadInputError(f"common delta sources {common}; expected 0..{MAX_DELTA_SOURCES}")
    check_upload(images, upload, namespace=namespace)
    chosen: list[CommonSource] = []
    if not upload.delta_from and session is not None:
        chosen = common_sources(session, images, upload, tenant=tenant, namespace=namespace,
                                limit=common)
        sources = tuple(c.image for c in chosen if c.image is not None)
    else:
        sources = upload.delta_from
    info = images.add_image(upload.name, upload.data, hardware_id=upload.hardware_id,
                            release_counter=upload.release_counter, version=upload.version,
                            kind=upload.kind, supplier=upload.supplier, now=now)
    deltas: list[DeltaInfo] = []
    skipped: list[str] = []
    for source in dict.fromkeys(sources):
        if source == upload.name:
            continue
        try:
            deltas.append(images.add_delta(source, upload.name, now=now))
        except BadInputError:  # checked above: only "not smaller than the full image" is left
            skipped.append(source)
    return Published(info, tuple(deltas), tuple(skipped), tuple(chosen))

