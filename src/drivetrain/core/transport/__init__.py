"""The message transport: the interface, the ``dt/v1`` topic scheme, the in-process bus.

Vehicles and cloud consumers code against ``Transport``; ``InProcessTransport`` is the embedded
default, and an MQTT 5 client implements the same interface for a real broker. See
docs/transport.md for the topic scheme and the delivery semantics.
"""

from drivetrain.core.transport.base import (
    HandlerFailure,
    Message,
    MessageHandler,
    QoS,
    Subscription,
    Transport,
    TransportStats,
)
from drivetrain.core.transport.inprocess import InProcessTransport
from drivetrain.core.transport.topics import (
    ACK,
    CAMPAIGNS,
    COMMANDS,
    EVENTS,
    STATE_DESIRED,
    STATE_REPORTED,
    TELEMETRY,
    TOPIC_ROOT,
    VehicleTopic,
    parse_vehicle_topic,
    shared_filter,
    split_shared_filter,
    topic_matches,
    validate_topic_filter,
    validate_topic_name,
    validate_vin,
    vehicle_filter,
    vehicle_topic,
)

__all__ = [
    "ACK",
    "CAMPAIGNS",
    "COMMANDS",
    "EVENTS",
    "STATE_DESIRED",
    "STATE_REPORTED",
    "TELEMETRY",
    "TOPIC_ROOT",
    "HandlerFailure",
    "InProcessTransport",
    "Message",
    "MessageHandler",
    "QoS",
    "Subscription",
    "Transport",
    "TransportStats",
    "VehicleTopic",
    "parse_vehicle_topic",
    "shared_filter",
    "split_shared_filter",
    "topic_matches",
    "validate_topic_filter",
    "validate_topic_name",
    "validate_vin",
    "vehicle_filter",
    "vehicle_topic",
]
