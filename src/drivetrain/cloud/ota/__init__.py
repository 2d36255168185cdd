"""Secure over-the-air updates: Uptane on TUF (python-tuf), with health-gated rollouts.

Public surface:

- Repositories: :class:`OtaLayout` (both repositories and their keys under the data
  directory), :class:`ImageRepository`, :class:`ImageInfo`, :class:`Director`,
  :class:`EcuAssignment`, :class:`KeyStore`, :class:`TufRepository`, :class:`Expiry`.
- Serving: :func:`make_server`, :class:`BackgroundServer`.
- Rollouts: :class:`Rollout`, :class:`WavePolicy`, :class:`VehicleHealth`, :func:`health_gate`,
  :class:`UpdateRecord`; across domains (twins, jobs) the functions of :mod:`flows`.
- Stored rollouts: the functions of :mod:`service` (create, approve, change, advance,
  report_vehicle, step_rollout, update_records) and :class:`RolloutSpec`; the health the
  gate judges, measured from the lake and the security domain: :mod:`health`; the
  dispatcher's round step that drives every stored rollout: :class:`RolloutDriver`.

See docs/ota.md.
"""

from drivetrain.cloud.ota import flows, service
from drivetrain.cloud.ota.director import Director, EcuAssignment
from drivetrain.cloud.ota.driver import RolloutDriver
from drivetrain.cloud.ota.images import ImageInfo, ImageRepository
from drivetrain.cloud.ota.keys import KeyStore
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.repository import Expiry, TufRepository
from drivetrain.cloud.ota.rollout import (
    GateDecision,
    Rollout,
    UpdateRecord,
    VehicleHealth,
    WavePolicy,
    health_gate,
)
from drivetrain.cloud.ota.serve import BackgroundServer, make_server
from drivetrain.cloud.ota.service import RolloutSpec

__all__ = [
    "BackgroundServer",
    "Director",
    "EcuAssignment",
    "Expiry",
    "GateDecision",
    "ImageInfo",
    "ImageRepository",
    "KeyStore",
    "OtaLayout",
    "Rollout",
    "RolloutDriver",
    "RolloutSpec",
    "TufRepository",
    "UpdateRecord",
    "VehicleHealth",
    "WavePolicy",
    "flows",
    "health_gate",
    "make_server",
    "service",
]
