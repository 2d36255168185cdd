"""Fleet security operations: security events, incidents, fleet correlation, analyst workflow.

Public surface: :func:`correlate`, :func:`list_security_events`, :func:`list_incidents`,
:func:`get_incident`, :func:`act_on_incident`, :func:`fleet_incidents`, the types
:class:`Incident`, :class:`FleetIncident`, :class:`CorrelationReport`, and
:data:`SECURITY_EVENT_TYPE`. See docs/ids.md.
"""

from drivetrain.cloud.security.service import (
    INCIDENT_ACTIONS,
    SECURITY_EVENT_TYPE,
    CorrelationReport,
    FleetIncident,
    Incident,
    act_on_incident,
    correlate,
    fleet_incidents,
    fleet_severity,
    get_incident,
    list_incidents,
    list_security_events,
)

__all__ = [
    "INCIDENT_ACTIONS",
    "SECURITY_EVENT_TYPE",
    "CorrelationReport",
    "FleetIncident",
    "Incident",
    "act_on_incident",
    "correlate",
    "fleet_incidents",
    "fleet_severity",
    "get_incident",
    "list_incidents",
    "list_security_events",
]
