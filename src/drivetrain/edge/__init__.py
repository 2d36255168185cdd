"""The edge agent: the software that runs in the vehicle.

It reads a CAN bus (python-can: virtual, socketcan, log replay), decodes frames to VSS signals,
runs the collection campaigns the cloud installed, keeps what it collects in a store-and-forward
buffer on disk, and sends it over the vehicle link; it obeys only downlink messages the cloud
signed. It ships to cars, so it imports ``drivetrain.core`` and libraries only, never
``drivetrain.cloud``. See docs/edge-agent.md.

Public surface (everything else in this package is internal; import these names from
``drivetrain.edge``):

- the agent: :class:`EdgeAgent`, :class:`AgentConfig`, :class:`AgentStats`, its identity
  (:class:`VehicleIdentity`) and what it acts through (:class:`VehicleActuator`,
  :class:`InMemoryActuator`);
- its inputs: :class:`Samples`, :class:`CanDecoding`, frame sources (:class:`FrameSource`,
  :class:`BusSource`, :class:`CaptureReplaySource`, :func:`open_frame_source`);
- collection: :class:`Campaign`, :class:`Trigger`, :func:`default_campaign`,
  :class:`CollectionEngine`, trigger expressions (:func:`parse_expression`,
  :class:`Expression`);
- the store-and-forward buffer: :class:`Buffer` (the protocol), :class:`SqliteBuffer`,
  :class:`MemoryBuffer`, the message types, and what another buffer implementation shares
  (:func:`check_message`, :func:`select_evictions`, :func:`message_from_row`,
  :func:`upgrade_schema`, :func:`encode_records`, :func:`records_from_legacy`);
- the agent's persisted state: :class:`AgentState` and its records;
- paid features: :class:`EntitlementGate` (offline token checks), :class:`FeatureStatus`,
  :class:`TokenRefused`, and :class:`FeatureSwitch` (an actuator that switches features).
- over-the-air updates: :mod:`tuf_client` (one TUF repository), :class:`UptanePrimary`
  (Uptane full verification), :class:`AbEcu` (A/B slots with automatic rollback),
  :class:`OtaUpdater` (the agent's answer to an ``ota.update`` notice) with
  :class:`ManifestSigning` (the keys that sign its version reports).
- intrusion detection (:mod:`drivetrain.edge.ids`): :func:`train_model`, :class:`IdsModel`,
  :class:`IdsModelError`, :class:`IdsStream`, :class:`SecurityEvent`, :func:`events_from`,
  :func:`score_capture`, :class:`CaptureScore`; the events' uplink :func:`to_vehicle_event`,
  :class:`EventLimiter`; trained models as OTA images: :func:`pack_model_image`,
  :func:`unpack_model_image`, :class:`ModelCard`, :class:`OnboardIds`.
"""

from drivetrain.edge.actuator import FeatureSwitch, InMemoryActuator, Scalar, VehicleActuator
from drivetrain.edge.agent import (
    ACK_PRIORITY,
    EVENT_PRIORITY,
    REPORT_PRIORITY,
    AgentConfig,
    AgentStats,
    EdgeAgent,
)
from drivetrain.edge.buffer import (
    MESSAGE_COLUMNS,
    AppendResult,
    Buffer,
    BufferedMessage,
    BufferStats,
    Eviction,
    KindSummary,
    MemoryBuffer,
    OutgoingMessage,
    SqliteBuffer,
    check_message,
    message_from_row,
    select_evictions,
    upgrade_schema,
)
from drivetrain.edge.campaigns import Campaign, Trigger, default_campaign
from drivetrain.edge.can_input import CanDecoding, DecodeCounters
from drivetrain.edge.collection import CollectionEngine, CollectionResult
from drivetrain.edge.entitlements import (
    EntitlementGate,
    EntitlementRefusal,
    FeatureState,
    FeatureStatus,
    TokenRefused,
)
from drivetrain.edge.expressions import Expression, parse_expression
from drivetrain.edge.identity import VehicleIdentity
from drivetrain.edge.ids import (
    SECURITY_EVENT_TYPE,
    CaptureScore,
    EventLimiter,
    IdsModel,
    IdsModelError,
    IdsStream,
    ModelCard,
    OnboardIds,
    SecurityEvent,
    events_from,
    pack_model_image,
    score_capture,
    to_vehicle_event,
    train_model,
    unpack_model_image,
)
from drivetrain.edge.ota import (
    AbEcu,
    DelegationHardwareError,
    DirectorImageMismatchError,
    EcuIdentity,
    EcuMismatchError,
    HealthResult,
    ImageHashError,
    ImageRollbackError,
    InstallOutcome,
    ManifestSigning,
    OtaUpdater,
    PreconditionError,
    RepositoryUrls,
    SlotImage,
    TufTransportError,
    TufUpdateError,
    UptanePrimary,
    UptaneVerificationError,
    VehicleConditions,
    VerifiedInstall,
    full_verification,
    tuf_client,
)
from drivetrain.edge.samples import Samples
from drivetrain.edge.sources import (
    BusSource,
    CaptureReplaySource,
    FrameSource,
    open_frame_source,
)
from drivetrain.edge.state import (
    AgentState,
    DesiredStateVersion,
    DownlinkMemory,
    HeldEntitlements,
    InstalledCampaigns,
    ManifestInForce,
    StateRecord,
    encode_records,
    records_from_legacy,
)
from drivetrain.edge.uplink import Uplink, UplinkStats

__all__ = [
    "ACK_PRIORITY",
    "EVENT_PRIORITY",
    "MESSAGE_COLUMNS",
    "REPORT_PRIORITY",
    "SECURITY_EVENT_TYPE",
    "AbEcu",
    "AgentConfig",
    "AgentState",
    "AgentStats",
    "AppendResult",
    "Buffer",
    "BufferStats",
    "BufferedMessage",
    "BusSource",
    "Campaign",
    "CanDecoding",
    "CaptureReplaySource",
    "CaptureScore",
    "CollectionEngine",
    "CollectionResult",
    "DecodeCounters",
    "DelegationHardwareError",
    "DesiredStateVersion",
    "DirectorImageMismatchError",
    "DownlinkMemory",
    "EcuIdentity",
    "EcuMismatchError",
    "EdgeAgent",
    "EntitlementGate",
    "EntitlementRefusal",
    "EventLimiter",
    "Eviction",
    "Expression",
    "FeatureState",
    "FeatureStatus",
    "FeatureSwitch",
    "FrameSource",
    "HealthResult",
    "HeldEntitlements",
    "IdsModel",
    "IdsModelError",
    "IdsStream",
    "ImageHashError",
    "ImageRollbackError",
    "InMemoryActuator",
    "InstallOutcome",
    "InstalledCampaigns",
    "KindSummary",
    "ManifestInForce",
    "ManifestSigning",
    "MemoryBuffer",
    "ModelCard",
    "OnboardIds",
    "OtaUpdater",
    "OutgoingMessage",
    "PreconditionError",
    "RepositoryUrls",
    "Samples",
    "Scalar",
    "SecurityEvent",
    "SlotImage",
    "SqliteBuffer",
    "StateRecord",
    "TokenRefused",
    "Trigger",
    "TufTransportError",
    "TufUpdateError",
    "Uplink",
    "UplinkStats",
    "UptanePrimary",
    "UptaneVerificationError",
    "VehicleActuator",
    "VehicleConditions",
    "VehicleIdentity",
    "VerifiedInstall",
    "check_message",
    "default_campaign",
    "encode_records",
    "events_from",
    "full_verification",
    "message_from_row",
    "open_frame_source",
    "pack_model_image",
    "parse_expression",
    "records_from_legacy",
    "score_capture",
    "select_evictions",
    "to_vehicle_event",
    "train_model",
    "tuf_client",
    "unpack_model_image",
    "upgrade_schema",
]
