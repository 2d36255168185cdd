"""The platform's consumers of the backbone streams (the fleet profile).

Public surface: :class:`ConsumerGroups` and :func:`open_consumer_groups` (members of the
consumer groups, in a process), :data:`CONSUMERS` (the groups: ``lake-activity``,
``twin-activity``, ``security-ops``), :class:`StreamConsumer`, :class:`GroupStats`,
:func:`vehicle_activity` (what the activity consumers counted). See docs/scale.md.
"""

from drivetrain.cloud.streams.activity import VehicleActivity, vehicle_activity
from drivetrain.cloud.streams.consumer_groups import (
    ConsumerGroups,
    GroupStats,
    open_consumer_groups,
)
from drivetrain.cloud.streams.effects import CONSUMERS, StreamConsumer

__all__ = [
    "CONSUMERS",
    "ConsumerGroups",
    "GroupStats",
    "StreamConsumer",
    "VehicleActivity",
    "open_consumer_groups",
    "vehicle_activity",
]
