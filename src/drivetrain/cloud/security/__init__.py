"""Fleet security operations: security events, incidents, fleet correlation, analyst workflow.

Public surface: :func:`correlate`, :func:`list_security_events`, :func:`list_incidents`,
:func:`get_incident`, :func:`act_on_incident`, :func:`count_security_events`, :func:`fleet_incidents`, the types
:class:`Incident`, :class:`FleetIncident`, :class:`CorrelationReport`, and
:data:`SECURITY_EVENT_TYPE`; response playbooks :data:`PLAYBOOKS`, :func:`propose_response`,
:func:`approve_response`, :func:`refuse_response`, :func:`execute_response`,
:func:`list_responses`; the R155 posture :func:`security_report` (:class:`SecurityReport`).
See docs/ids.md.
"""

from drivetrain.cloud.security.playbooks import (
    PLAYBOOKS,
    Playbook,
    Response,
    approve_response,
    execute_response,
    list_responses,
    propose_response,
    refuse_response,
)
from drivetrain.cloud.security.report import DurationStats, SecurityReport, security_report
from drivetrain.cloud.security.service import (
    INCIDENT_ACTIONS,
    SECURITY_EVENT_TYPE,
    CorrelationReport,
    FleetIncident,
    Incident,
    act_on_incident,
    correlate,
    count_security_events,
    fleet_incidents,
    fleet_severity,
    get_incident,
    list_incidents,
    list_security_events,
)

__all__ = [
    "INCIDENT_ACTIONS",
    "PLAYBOOKS",
    "SECURITY_EVENT_TYPE",
    "CorrelationReport",
    "DurationStats",
    "FleetIncident",
    "Incident",
    "Playbook",
    "Response",
    "SecurityReport",
    "act_on_incident",
    "approve_response",
    "correlate",
    "count_security_events",
    "execute_response",
    "fleet_incidents",
    "fleet_severity",
    "get_incident",
    "list_incidents",
    "list_responses",
    "list_security_events",
    "propose_response",
    "refuse_response",
    "security_report",
]
