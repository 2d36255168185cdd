"""The vehicle-link wire format (v1): a signed envelope around a columnar or JSON body.

See docs/wire-format.md. Vehicle and cloud both import from here; the format is the contract.
"""

from drivetrain.core.wire.envelope import (
    FORMAT_VERSION,
    Envelope,
    MessageKind,
    new_message_id,
    parse,
    seal,
    seal_json,
    seal_with_mac,
)
from drivetrain.core.wire.inventory import (
    INVENTORY_EVENT,
    MAX_INVENTORY_ECUS,
    EcuInfo,
    inventory_event,
    inventory_from_event,
)
from drivetrain.core.wire.ipc_limits import IpcLimits, IpcSize, check_ipc_stream
from drivetrain.core.wire.messages import (
    Ack,
    Command,
    DesiredStateDelta,
    VehicleEvent,
    events_from_dict,
    events_to_dict,
)
from drivetrain.core.wire.safe_json import MAX_JSON_DEPTH, check_document, load_json_object
from drivetrain.core.wire.session import (
    MAC_KINDS,
    REPLAY_WINDOW,
    SESSION_MAX_AGE_NS,
    SESSION_MAX_MESSAGES,
    SessionOpen,
    VehicleSession,
    platform_session_key,
)
from drivetrain.core.wire.telemetry import (
    CAMPAIGN_HEADER,
    TELEMETRY_SCHEMA,
    SampleArrays,
    batch_campaign,
    decode_sample_arrays,
    decode_samples,
    encode_samples,
    samples_table,
    seal_telemetry,
)

__all__ = [
    "CAMPAIGN_HEADER",
    "FORMAT_VERSION",
    "INVENTORY_EVENT",
    "MAC_KINDS",
    "MAX_INVENTORY_ECUS",
    "MAX_JSON_DEPTH",
    "REPLAY_WINDOW",
    "SESSION_MAX_AGE_NS",
    "SESSION_MAX_MESSAGES",
    "TELEMETRY_SCHEMA",
    "Ack",
    "Command",
    "DesiredStateDelta",
    "EcuInfo",
    "Envelope",
    "IpcLimits",
    "IpcSize",
    "MessageKind",
    "SampleArrays",
    "SessionOpen",
    "VehicleEvent",
    "VehicleSession",
    "batch_campaign",
    "check_document",
    "check_ipc_stream",
    "decode_sample_arrays",
    "decode_samples",
    "encode_samples",
    "events_from_dict",
    "events_to_dict",
    "inventory_event",
    "inventory_from_event",
    "load_json_object",
    "new_message_id",
    "parse",
    "platform_session_key",
    "samples_table",
    "seal",
    "seal_json",
    "seal_telemetry",
    "seal_with_mac",
]
