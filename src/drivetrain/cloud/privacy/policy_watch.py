"""The minimisation policy goes to the cars by itself when its file changes.

:class:`PolicyWatcher` runs in the control plane (``drivetrain serve``, ``drivetrain worker
dispatch``): every ``poll_interval_s`` it reads the policy in force
(``core.privacy_policy.active_policy``, which re-reads the file when its modification time
changes) and, when that is not the policy it last looked at (a changed file, or the first
round after a start: the file may have changed while no process ran), compares each region's
rules with what each tenant's cars there were last sent — the rules of the tenant's latest
``privacy.policy`` job for the region, or, never pushed, the shipped policy's, which the agent
holds built in. Each region whose rules differ is pushed (:func:`push_policy`, actor
:data:`ACTOR`); an unchanged file pushes nothing, however often it is looked at.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from sqlalchemy.orm import Session

from drivetrain.cloud.commands import list_jobs
from drivetrain.cloud.infra import Database, list_tenants
from drivetrain.cloud.infra.round_loop import RoundLoop
from drivetrain.cloud.privacy.policy_push import POLICY_COMMAND, PolicyPush, push_policy
from drivetrain.core.privacy_policy import DEFAULT_POLICY_FILE, MinimisationPolicy, active_policy

log = logging.getLogger(__name__)

#: Who the audit log names for an automatic push.
ACTOR: Final = "privacy-policy-watch"
#: The newest privacy jobs of a tenant searched for its latest push of each region.
_LOOKBACK: Final = 1000


def last_pushed_rules(session: Session, tenant: str) -> dict[str, object]:
    """Region → the rules the tenant's latest ``privacy.policy`` push of it carried."""
    found: dict[str, object] = {}
    for job in list_jobs(session, tenant=tenant, origin="privacy", limit=_LOOKBACK):
        args = job.body.get("args") or {}
        region = args.get("region")
        if job.name == POLICY_COMMAND and isinstance(region, str) and region not in found:
            found[region] = args.get("rules")  # newest first: the first one is the latest
    return found


def stale_regions(session: Session, tenant: str, policy: MinimisationPolicy) -> list[str]:
    """The regions of ``policy`` whose rules are not what the tenant's cars there hold."""
    pushed = last_pushed_rules(session, tenant)
    shipped = MinimisationPolicy.read(DEFAULT_POLICY_FILE).regions
    stale = []
    for region, rules in sorted(policy.regions.items()):
        held = pushed.get(region)
        if held is None and region in shipped:
            held = shipped[region].to_dict()
        if held != rules.to_dict():
            stale.append(region)
    return stale


def push_changed_policy(
    database: Database, policy: MinimisationPolicy, *, now: datetime | None = None
) -> list[PolicyPush]:
    """Push each tenant the regions of ``policy`` its cars do not hold (see the module
    docstring); what was pushed."""
    pushes: list[PolicyPush] = []
    with database.session() as session:
        for tenant in list_tenants(session):
            regions = stale_regions(session, tenant.tenant_id, policy)
            if regions:
                pushes += push_policy(session, policy, tenant=tenant.tenant_id, actor=ACTOR,
                                      regions=regions, now=now)
    for push in pushes:
        log.info("privacy policy %s: region %s pushed to %d vehicles (job %s)",
                 policy.source, push.region, push.vehicles, push.job_id)
    return pushes


class PolicyWatcher(RoundLoop):
    """Pushes the policy when its file changes (see the module docstring)."""

    def __init__(self, database: Database, poll_interval_s: float = 30.0) -> None:
        super().__init__(database, domain="privacy", thread_name="privacy-policy-watch",
                         poll_interval_s=poll_interval_s)
        self._seen: MinimisationPolicy | None = None

    def run_once(self) -> list[PolicyPush]:
        """Push what changed since the last round; the pushes made.

        Raises:
            ConfigurationError, BadInputError: the policy file is missing or invalid (the
                round fails; the next one reads it again).
        """
        self.rounds += 1
        policy = active_policy()
        if policy is self._seen:  # the same file, unchanged: read once, cached by mtime
            return []
        pushes = push_changed_policy(self.database, policy)
        self._seen = policy
        return pushes
