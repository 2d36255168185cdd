"""Portability: a tenant's or a data subject's data as an open, self-describing bundle
(JSON + JSON Schemas + Parquet, a manifest with SHA-256 of every file), and importing a
tenant bundle into another installation, idempotently.

Public surface: :func:`export_data`, :func:`import_bundle`, :class:`ImportReport`,
:class:`Subject`, :class:`ExportManifest`, :func:`verify` (check a bundle), :data:`EXCLUDED`
(tables never exported, with why); data subject requests carried out: :func:`serve_access`,
:func:`serve_erasure`, :func:`reapply_erasures`.
"""

from drivetrain.cloud.portability.manifest import ExportManifest, verify
from drivetrain.cloud.portability.rights import reapply_erasures, serve_access, serve_erasure
from drivetrain.cloud.portability.service import ImportReport, export_data, import_bundle
from drivetrain.cloud.portability.tables import EXCLUDED, Subject

__all__ = [
    "EXCLUDED",
    "ExportManifest",
    "ImportReport",
    "Subject",
    "export_data",
    "import_bundle",
    "reapply_erasures",
    "serve_access",
    "serve_erasure",
    "verify",
]
