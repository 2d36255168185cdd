"""The message transport: the interface, the ``dt/v1`` topic scheme, the in-process bus.

Vehicles and cloud consumers code against ``Transport``; ``InProcessTransport`` is the embedded
default and ``MqttTransport`` an MQTT 5 client of a real broker; ``open_transport(url, ...)``
picks one from a URL. See docs/transport.md for the topic scheme and the delivery semantics.
"""

from drivetrain.core.transport.base import (
    HandlerFailure,
    Message,
    MessageHandler,
    PublishTicket,
    QoS,
    Subscription,
    Transport,
    TransportStats,
)
from drivetrain.core.transport.factory import INPROCESS_URL, BusClient, open_transport
from drivetrain.core.transport.inprocess import InProcessTransport
from drivetrain.core.transport.mqtt import MqttTransport
from drivetrain.core.transport.mqtt_options import BrokerAddress, TlsFiles, parse_broker_url
from drivetrain.core.transport.topics import (
    ACK,
    CAMPAIGNS,
    COMMANDS,
    DECODER,
    ENTITLEMENTS,
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
    "DECODER",
    "ENTITLEMENTS",
    "EVENTS",
    "INPROCESS_URL",
    "STATE_DESIRED",
    "STATE_REPORTED",
    "TELEMETRY",
    "TOPIC_ROOT",
    "BrokerAddress",
    "BusClient",
    "HandlerFailure",
    "InProcessTransport",
    "Message",
    "MessageHandler",
    "MqttTransport",
    "PublishTicket",
    "QoS",
    "Subscription",
    "TlsFiles",
    "Transport",
    "TransportStats",
    "VehicleTopic",
    "open_transport",
    "parse_broker_url",
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
