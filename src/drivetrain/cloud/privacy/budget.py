"""The per-tenant privacy budget: how much epsilon differentially private releases have spent.

Every differentially private release (:mod:`drivetrain.cloud.privacy.aggregates`) costs its
epsilon; by sequential composition the costs of releases over the same data add up. Each
tenant has a total budget (setting ``privacy_epsilon_budget``, default 10): a release is
charged *before* it is computed and refused when the budget cannot pay for it. The ledger is
append-only (one row per release, with what was asked) and every charge is audited
(``privacy.budget.spend``); a refusal is audited by the caller.

The budget is a lifetime total per tenant: releases do not refill it. An operator that decides
a new period may spend again raises the setting, knowingly (and that decision is theirs to
document).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from drivetrain.cloud.infra import get_tenant, record_audit
from drivetrain.cloud.privacy.models import PrivacyBudgetSpendRow
from drivetrain.core.errors import PermissionDeniedError


class PrivacyBudgetExhaustedError(PermissionDeniedError):
    """A differentially private release costs more epsilon than the tenant has left."""


@dataclass(frozen=True, slots=True)
class Budget:
    """A tenant's privacy budget: total, spent, left (epsilon) and how many releases."""

    tenant: str
    total: float
    spent: float
    releases: int

    @property
    def left(self) -> float:
        """Epsilon still to spend (never negative)."""
        return max(0.0, self.total - self.spent)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {"tenant": self.tenant, "total": self.total, "spent": round(self.spent, 9),
                "left": round(self.left, 9), "releases": self.releases}


def budget_of(session: Session, tenant: str, total: float) -> Budget:
    """``tenant``'s budget of ``total`` epsilon and what it has spent.

    Raises:
        NotFoundError: the tenant does not exist.
    """
    get_tenant(session, tenant)
    spent, releases = session.execute(
        select(func.coalesce(func.sum(PrivacyBudgetSpendRow.epsilon), 0.0), func.count())
        .where(PrivacyBudgetSpendRow.tenant_id == tenant)
    ).one()
    return Budget(tenant, total, float(spent), int(releases))


def spend(
    session: Session,
    tenant: str,
    epsilon: float,
    *,
    total: float,
    actor: str,
    query: dict[str, object],
    request_id: str | None = None,
    now: datetime | None = None,
) -> Budget:
    """Charge ``epsilon`` to ``tenant``'s budget of ``total``; the budget after the charge.

    On PostgreSQL a transaction-scoped advisory lock per tenant is taken first, so two
    concurrent releases cannot both spend the last of it (SQLite, the embedded store, takes
    one writer at a time).

    Raises:
        ValueError: ``epsilon`` is not positive.
        PrivacyBudgetExhaustedError: ``epsilon`` is more than what is left (nothing charged).
        NotFoundError: the tenant does not exist.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
                        {"key": f"privacy-budget:{tenant}"})
    before = budget_of(session, tenant, total)
    if epsilon > before.left + 1e-12:
        raise PrivacyBudgetExhaustedError(
            f"privacy budget of tenant {tenant!r} exhausted: the release costs epsilon "
            f"{epsilon:g}, {before.left:g} of {total:g} is left ({before.spent:g} spent in "
            f"{before.releases} releases)")
    now = now or datetime.now(UTC)
    session.add(PrivacyBudgetSpendRow(tenant_id=tenant, epsilon=epsilon, spent_at=now,
                                      actor=actor, query=json.dumps(query, sort_keys=True)))
    record_audit(session, tenant=tenant, actor=actor, action="privacy.budget.spend",
                 target="privacy:budget", request_id=request_id, now=now,
                 details={"epsilon": epsilon, "left": before.left - epsilon, **query})
    session.flush()
    return Budget(tenant, total, before.spent + epsilon, before.releases + 1)
