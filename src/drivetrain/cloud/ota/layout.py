"""Where the OTA repositories and their keys live under the data directory.

``<data_dir>/ota/image`` and ``<data_dir>/ota/director`` are the two Uptane repositories;
``<data_dir>/ota/keys/image`` and ``<data_dir>/ota/keys/director`` their key sets (root keys
in ``offline/``, to be moved to removable media once root is signed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from drivetrain.cloud.ota.director import Director
from drivetrain.cloud.ota.images import ImageRepository
from drivetrain.cloud.ota.keys import KeyStore
from drivetrain.core.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class OtaLayout:
    """The OTA folders under ``root`` (``<data_dir>/ota``)."""

    root: Path

    @classmethod
    def under(cls, data_dir: Path) -> OtaLayout:
        return cls(Path(data_dir) / "ota")

    @property
    def image_keys(self) -> KeyStore:
        return KeyStore(self.root / "keys" / "image")

    @property
    def director_keys(self) -> KeyStore:
        return KeyStore(self.root / "keys" / "director")

    @property
    def image_path(self) -> Path:
        return self.root / "image"

    @property
    def director_path(self) -> Path:
        return self.root / "director"

    @property
    def initialised(self) -> bool:
        return (self.image_path / "metadata" / "timestamp.json").is_file() and (
            self.director_path / "root" / "metadata" / "timestamp.json").is_file()

    def images(self) -> ImageRepository:
        """The Image repository. Raises NotFoundError when not initialised."""
        self._require()
        return ImageRepository(self.image_path, self.image_keys)

    def director(self) -> Director:
        """The Director. Raises NotFoundError when not initialised."""
        self._require()
        return Director(self.director_path, self.director_keys)

    def _require(self) -> None:
        if not self.initialised:
            raise NotFoundError(
                f"no OTA repositories in {self.root}; create them with 'drivetrain ota init'"
            )

    def init(
        self, thresholds: Mapping[str, tuple[int, int]], *, now: datetime | None = None
    ) -> None:
        """Create both key sets (when absent) and both repositories.

        Raises:
            BadInputError: the repositories already exist, or bad thresholds.
        """
        for keys in (self.image_keys, self.director_keys):
            if not keys.exists:
                keys.generate(thresholds)
        ImageRepository.create(self.image_path, self.image_keys, now=now)
        Director.create(self.director_path, self.director_keys, now=now)
