"""The fleet profile's backbone: the platform status bus bridged over NATS JetStream.

:func:`open_backbone_bridge` connects a process to the JetStream backbone of
``settings.backbone_url`` (creating the per-domain streams if missing) and starts a
:class:`~drivetrain.cloud.infra.bus.BusBridge` on it: what this process commits goes to the
domain's durable stream (``backbone_topic``), and the twins' and the other domains' status
committed by other processes comes back to the local bus. The telemetry and security
announcements of ingest are not fed back to every process: they are for consumer groups
(``$share/{group}/dt/platform/v1/telemetry``), which read them durably and at their own pace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from drivetrain.cloud.infra.bus import BusBridge, status_bus
from drivetrain.cloud.infra.database import Database
from drivetrain.core.errors import ConfigurationError
from drivetrain.core.settings import Settings

if TYPE_CHECKING:
    from drivetrain.core.transport.jetstream import JetStreamTransport

#: What a process receives from the backbone (filters under ``dt/platform/v1``).
INBOUND: Final = ("twins", "status/#")


def open_backbone_bridge(
    settings: Settings, database: Database, client_id: str
) -> tuple[JetStreamTransport, BusBridge]:
    """Connect to the backbone and bridge ``database``'s status bus over it.

    Returns the transport (close it after stopping the bridge) and the started bridge.

    Raises:
        ConfigurationError: ``backbone_url`` is unset or malformed, or nats-py is missing.
        TransportError: JetStream does not answer or the streams cannot be created.
    """
    from drivetrain.core.transport.jetstream import JetStreamTransport
    from drivetrain.core.transport.jetstream_streams import BACKBONE_ROOT, backbone_topic

    if settings.backbone_url is None:
        raise ConfigurationError("the fleet profile needs backbone_url (nats://host:port)")
    backbone = JetStreamTransport(settings.backbone_url, client_id=client_id,
                                  replicas=settings.backbone_replicas,
                                  namespace=settings.backbone_namespace)
    try:
        bridge = BusBridge(status_bus(database.engine), backbone, root=BACKBONE_ROOT,
                           topic_of=backbone_topic, inbound=INBOUND).start()
    except BaseException:
        backbone.close()
        raise
    return backbone, bridge
