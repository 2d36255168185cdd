"""The vehicle's agent: ``EdgeAgent`` and its parts.

``edge_agent`` drives one vehicle tick by tick; ``handler`` applies and acknowledges the
downlink messages the guard accepts; ``outbox`` seals what the vehicle sends into its buffer;
``config`` holds the tuning, the counters and the message priorities.
"""

from drivetrain.edge.agent.config import (
    ACK_PRIORITY,
    EVENT_PRIORITY,
    REPORT_PRIORITY,
    AgentConfig,
    AgentStats,
)
from drivetrain.edge.agent.edge_agent import EdgeAgent

__all__ = [
    "ACK_PRIORITY",
    "EVENT_PRIORITY",
    "REPORT_PRIORITY",
    "AgentConfig",
    "AgentStats",
    "EdgeAgent",
]
