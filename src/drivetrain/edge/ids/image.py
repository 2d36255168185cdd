"""A trained intrusion-detection model as an OTA image, and the IDS that runs it on the vehicle.

The image is one file: a magic line, the model card (one line of JSON: the model's name and
version, the SHA-256 and length of the model file, and what training recorded), then the model
file's bytes. The Image repository signs the whole file like any other image (kind ``model``);
the vehicle verifies the signed hash before installing, and :func:`unpack_model_image` then
checks the card's own hash and loads the model, so a file that is not a loadable model fails
the IDS component's health check and the A/B install rolls back.

:class:`OnboardIds` is the vehicle's intrusion detector: it scores with the model of its ECU's
active slot, switches to a new model only when the install's health check loads it, and after a
restart starts from the model the active slot holds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, Protocol

from drivetrain.core.can import FrameBatch
from drivetrain.core.wire import VehicleEvent
from drivetrain.edge.ids.events import events_from
from drivetrain.edge.ids.model import MAX_MODEL_BYTES, IdsModel, IdsModelError, IdsStream
from drivetrain.edge.ids.uplink import EventLimiter, to_vehicle_event
from drivetrain.edge.ota.slots import HealthResult

MAGIC: Final = b"drivetrain-ids-model-image/1\n"
MAX_CARD_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What the image says about the model it carries."""

    name: str
    version: str
    sha256: str
    length: int
    trained: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256,
                "length": self.length, "trained": self.trained}


def pack_model_image(model_file: bytes, *, name: str, version: str) -> bytes:
    """The image of a model file: magic, card, model bytes.

    Raises:
        IdsModelError: ``model_file`` is not a loadable intrusion-detection model, or the
            name or version is empty (nothing is packed that a vehicle could not load).
    """
    if not name.strip() or not version.strip():
        raise IdsModelError(f"model image: name {name!r} and version {version!r}; expected "
                            "both non-empty")
    model = IdsModel.from_bytes(model_file, name)
    card = ModelCard(name, version, hashlib.sha256(model_file).hexdigest(), len(model_file),
                     {k: v for k, v in model.meta.items() if k != "detectors"}
                     | {"detectors": list(model.detector_names)})
    line = json.dumps(card.to_dict(), sort_keys=True).encode()
    if len(line) > MAX_CARD_BYTES:
        raise IdsModelError(f"model image {name}: card is {len(line)} bytes; at most "
                            f"{MAX_CARD_BYTES}")
    return MAGIC + line + b"\n" + model_file


def unpack_model_image(image: bytes) -> tuple[ModelCard, IdsModel]:
    """The card and the loaded model of an image made by :func:`pack_model_image`.

    Raises:
        IdsModelError: no magic, an unreadable card, a model whose length or SHA-256 differs
            from the card's, or a model file that does not load.
    """
    if not image.startswith(MAGIC):
        raise IdsModelError("model image: does not start with "
                            f"{MAGIC.decode().strip()!r}; expected a packed IDS model")
    line, sep, model_file = image[len(MAGIC):].partition(b"\n")
    if not sep or len(line) > MAX_CARD_BYTES:
        raise IdsModelError(f"model image: no model card line within {MAX_CARD_BYTES} bytes")
    try:
        raw = json.loads(line.decode("utf-8"))
        card = ModelCard(str(raw["name"]), str(raw["version"]), str(raw["sha256"]),
                         int(raw["length"]), dict(raw["trained"]))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise IdsModelError(f"model image: card unreadable: {e}") from e
    if card.length > MAX_MODEL_BYTES or len(model_file) != card.length or \
            hashlib.sha256(model_file).hexdigest() != card.sha256:
        raise IdsModelError(f"model image {card.name} {card.version}: the model's length or "
                            "SHA-256 differs from its card")
    return card, IdsModel.from_bytes(model_file, f"{card.name} {card.version}")


class _Slots(Protocol):
    """What :class:`OnboardIds` reads of its ECU: the active slot's bytes."""

    def image_bytes(self) -> bytes | None: ...


class OnboardIds:
    """The vehicle's intrusion detector, fed by its IDS component's OTA slots.

    Pass :meth:`health_check` to the component's :class:`~drivetrain.edge.ota.AbEcu`: an
    install keeps a new image only if it loads as a model, and the detector then scores with it.
    """

    def __init__(self, model: IdsModel | None = None, card: ModelCard | None = None) -> None:
        self.model = model
        self.card = card
        self.limiter = EventLimiter()
        self._stream: IdsStream | None = None

    @classmethod
    def from_slots(cls, ecu: _Slots) -> OnboardIds:
        """The detector after a restart: the model of the active slot (none in factory state).

        Raises:
            IdsModelError: the active slot holds something that is not a model image.
        """
        image = ecu.image_bytes()
        if image is None:
            return cls()
        card, model = unpack_model_image(image)
        return cls(model, card)

    @property
    def version(self) -> str | None:
        """The running model's version (None: no model yet)."""
        return None if self.card is None else self.card.version

    def health_check(self, serial: str, image: bytes) -> HealthResult:
        """Boot ``image`` on the IDS component: healthy when it loads as a model, which then
        replaces the running one; otherwise the running model stays."""
        try:
            card, model = unpack_model_image(image)
        except IdsModelError as e:
            return HealthResult(False, f"{serial}: model does not load: {e}")
        self.model, self.card, self._stream = model, card, None
        return HealthResult(True, f"{serial}: IDS model {card.name} {card.version} loaded "
                                  f"({len(model.ids)} CAN ids)")

    def scan(self, frames: FrameBatch, *, epoch_offset_s: float = 0.0) -> list[VehicleEvent]:
        """Score the bus's next ``frames`` (time order) with the running model; the security
        events to send now (rate-limited per signature). A new model starts a fresh stream;
        without a model nothing is scored."""
        if self.model is None or not len(frames):
            return []
        if self._stream is None or self._stream.model is not self.model:
            self._stream = self.model.stream()
        raised = events_from(self.model, frames, self._stream.score(frames))
        sent = self.limiter.offer(raised, float(frames.timestamp_s[-1]))
        return [to_vehicle_event(e, epoch_offset_s=epoch_offset_s) for e in sent]
