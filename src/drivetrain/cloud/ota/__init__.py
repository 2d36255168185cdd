"""Secure over-the-air updates: Uptane on TUF (python-tuf), with health-gated rollouts.

Public surface:

- Repositories: :class:`OtaLayout` (both repositories and their keys under the data
  directory), :class:`ImageRepository`, :class:`ImageInfo`, :class:`Director`,
  :class:`EcuAssignment`, :class:`KeyStore`, :class:`TufRepository`, :class:`Expiry`.
- Serving: :func:`make_server`, :class:`BackgroundServer`.
- Rollouts: :class:`Rollout`, :class:`WavePolicy`, :class:`Kpis`, :func:`health_gate`,
  :class:`UpdateRecord`; across domains (twins, jobs) the functions of :mod:`flows`.

See docs/ota.md.
"""

from drivetrain.cloud.ota import flows
from drivetrain.cloud.ota.director import Director, EcuAssignment
from drivetrain.cloud.ota.images import ImageInfo, ImageRepository
from drivetrain.cloud.ota.keys import KeyStore
from drivetrain.cloud.ota.layout import OtaLayout
from drivetrain.cloud.ota.repository import Expiry, TufRepository
from drivetrain.cloud.ota.rollout import (
    GateDecision,
    Kpis,
    Rollout,
    UpdateRecord,
    WavePolicy,
    health_gate,
)
from drivetrain.cloud.ota.serve import BackgroundServer, make_server

__all__ = [
    "BackgroundServer",
    "Director",
    "EcuAssignment",
    "Expiry",
    "GateDecision",
    "ImageInfo",
    "ImageRepository",
    "KeyStore",
    "Kpis",
    "OtaLayout",
    "Rollout",
    "TufRepository",
    "UpdateRecord",
    "WavePolicy",
    "flows",
    "health_gate",
    "make_server",
]
