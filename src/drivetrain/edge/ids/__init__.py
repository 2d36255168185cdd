"""In-vehicle intrusion detection over CAN frames, learned from benign traffic only.

Public surface:

- training and the model file: :func:`train_model`, :class:`IdsModel` (``save``/``load``,
  versioned ``.npz``), :class:`IdsModelError`;
- the model as an OTA image: :func:`pack_model_image` / :func:`unpack_model_image` (model plus
  card, hashed), :class:`ModelCard`; :class:`OnboardIds`, the vehicle's detector, fed by its
  IDS component's A/B slots (its ``health_check`` loads the new model or rolls back);
- scoring a bus: :class:`IdsStream` (``model.stream().score(batch)``), :class:`ScoredFrames`;
- events: :class:`SecurityEvent`, :func:`events_from`; to the cloud: :func:`to_vehicle_event`,
  :class:`EventLimiter` (per-signature rate limit that aggregates, never drops);
- evaluation on labelled captures: :func:`score_capture`, :class:`CaptureScore`, :func:`auroc`.

The detectors (:mod:`.detectors`, :mod:`.crossbit`, :mod:`.timing`) share one interface; see
docs/ids.md. The end-to-end protection check (counters, CRCs declared in a DBC) is
:class:`drivetrain.core.can.e2e.E2EChecker`.
"""

from drivetrain.edge.ids.evaluation import CaptureScore, auroc, score_capture
from drivetrain.edge.ids.events import SecurityEvent, events_from
from drivetrain.edge.ids.image import ModelCard, OnboardIds, pack_model_image, unpack_model_image
from drivetrain.edge.ids.model import IdsModel, IdsModelError, IdsStream, ScoredFrames, train_model
from drivetrain.edge.ids.uplink import SECURITY_EVENT_TYPE, EventLimiter, to_vehicle_event

__all__ = [
    "SECURITY_EVENT_TYPE",
    "CaptureScore",
    "EventLimiter",
    "IdsModel",
    "IdsModelError",
    "IdsStream",
    "ModelCard",
    "OnboardIds",
    "ScoredFrames",
    "SecurityEvent",
    "auroc",
    "events_from",
    "pack_model_image",
    "score_capture",
    "to_vehicle_event",
    "train_model",
    "unpack_model_image",
]
