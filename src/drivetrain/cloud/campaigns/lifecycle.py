"""A campaign's life cycle and its targeting decisions — pure, no I/O, no clock.

Life cycle::

    draft ──approve──▶ approved ──start (start time)──▶ running ──finish (end time)──▶ finished
                                                        │   ▲
                                               suspend  ▼   │ resume
                                                      suspended ──finish──▶ finished
    any state but retired ──retire──▶ retired

A campaign's **definition** is versioned: version 1 is written as a draft; only a draft may be
edited; an approved definition is changed by writing a new version, which takes effect only
when it is approved in its turn (by a second person where the tenant requires it).

**Targeting.** Each round compares the vehicles that have the campaign (per vehicle: its most
recent delivery) with the vehicles the query selects now (:func:`plan_targets`): vehicles that
stopped matching get a withdrawal; vehicles that match now get an install, as long as the cap
allows; vehicles holding an outdated version are sent the current one. A vehicle that rejected
the current version is not asked again until the version changes.

**Wire versions.** A vehicle installs a campaign only if its version is newer than every
version it saw for that id (a withdrawal included), so every message carries a number from one
counter that only grows (:class:`WireVersions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from drivetrain.core.errors import PermissionDeniedError, StateTransitionError

CampaignStatus = Literal["draft", "approved", "running", "suspended", "finished", "retired"]
CAMPAIGN_STATUSES: Final[tuple[CampaignStatus, ...]] = get_args(CampaignStatus)
Action = Literal["approve", "start", "suspend", "resume", "finish", "retire"]
VersionStatus = Literal["draft", "approved", "superseded"]

_TRANSITIONS: Final[Mapping[tuple[CampaignStatus, Action], CampaignStatus]] = {
    ("draft", "approve"): "approved",
    ("approved", "start"): "running",
    ("running", "suspend"): "suspended",
    ("suspended", "resume"): "running",
    ("running", "finish"): "finished",
    ("suspended", "finish"): "finished",
    ("approved", "finish"): "finished",
    **{(s, "retire"): "retired" for s in CAMPAIGN_STATUSES if s != "retired"},
}
#: States in which the campaign is on vehicles (or on its way there).
LIVE: Final[frozenset[CampaignStatus]] = frozenset({"running"})

#: Per-vehicle states of a campaign, derived from the vehicle's latest delivery.
VehicleState = Literal["pending", "delivered", "active", "rejected", "withdrawing",
                       "withdrawn", "superseded"]
INSTALL: Final = "install"
WITHDRAW: Final = "withdraw"


def next_status(status: CampaignStatus, action: Action, campaign_id: str) -> CampaignStatus:
    """The campaign status after ``action``.

    Raises:
        StateTransitionError: ``action`` is not allowed in ``status`` (names what is).
    """
    after = _TRANSITIONS.get((status, action))
    if after is None:
        allowed = sorted(a for (s, a) in _TRANSITIONS if s == status)
        raise StateTransitionError(
            f"campaign {campaign_id!r} is {status}; it cannot {action} "
            f"(allowed: {', '.join(allowed) or 'nothing'})"
        )
    return after


def check_editable(version_status: VersionStatus, campaign_id: str, version: int) -> None:
    """Only a draft definition may change.

    Raises:
        StateTransitionError: the version is approved (or superseded): a change needs a new
            version, approved in its turn.
    """
    if version_status != "draft":
        raise StateTransitionError(
            f"campaign {campaign_id!r} version {version} is {version_status}: it cannot be "
            f"edited; write a new version (it takes effect once approved)"
        )


def check_approver(
    *, require_second: bool, author: str, approver: str, campaign_id: str, version: int
) -> None:
    """Where the tenant requires it, the approver is not the version's author.

    Raises:
        PermissionDeniedError: the author approving their own version under the two-person
            rule.
    """
    if require_second and author == approver:
        raise PermissionDeniedError(
            f"campaign {campaign_id!r} version {version} was written by {author}; this tenant "
            "requires a second person to approve it"
        )


def vehicle_state(label: str, delivery_state: str) -> VehicleState:
    """A vehicle's campaign state from its latest delivery (label and dispatcher state)."""
    if label == WITHDRAW:
        return "withdrawn" if delivery_state == "succeeded" else "withdrawing"
    return {
        "queued": "pending", "delivered": "delivered", "succeeded": "active",
        "failed": "rejected", "timed_out": "delivered", "cancelled": "superseded",
    }.get(delivery_state, "pending")  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Member:
    """What a vehicle last got of the campaign: the label, the dispatcher state, the version."""

    label: str
    state: str
    version: int

    @property
    def has_campaign(self) -> bool:
        """An install that is on its way, delivered or acknowledged."""
        return self.label == INSTALL and self.state in ("queued", "delivered", "succeeded")


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """What a round sends: installs (new and outdated vehicles) and withdrawals."""

    install: tuple[str, ...]
    withdraw: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.install and not self.withdraw


def plan_targets(
    members: Mapping[str, Member],
    matches: Sequence[str],
    *,
    cap: int | None,
    content_version: int,
    live: bool,
) -> TargetPlan:
    """The round's sends (see the module docstring). ``matches`` in priority order (VIN);
    ``live`` False (suspended, retired): withdraw from every vehicle that has it."""
    holding = [vin for vin, m in members.items() if m.has_campaign]
    if not live:
        return TargetPlan((), tuple(sorted(holding)))
    wanted = set(matches)
    withdraw = tuple(sorted(v for v in holding if v not in wanted))
    keep = [v for v in holding if v in wanted]
    outdated = [v for v in keep if members[v].version < content_version]
    room = len(matches) if cap is None else max(0, cap - len(keep))
    new: list[str] = []
    for vin in matches:
        if len(new) >= room:
            break
        member = members.get(vin)
        if member is not None and (
            member.has_campaign
            or (member.label == INSTALL and member.state == "failed"
                and member.version >= content_version)
        ):
            continue  # has it, or rejected this very version: not asked again
        new.append(vin)
    return TargetPlan(tuple(sorted(outdated)) + tuple(new), withdraw)


@dataclass(frozen=True, slots=True)
class WireVersions:
    """The campaign's wire version numbers.

    ``content``: the version at which the current definition was first sent (a vehicle with an
    older one gets the current). ``install``: the version new installs carry. ``counter``: the
    highest number ever sent.
    """

    content: int = 0
    install: int = 0
    counter: int = 0

    def new_content(self) -> WireVersions:
        """The definition (or its state) changed: everything is sent again at a new number."""
        v = self.counter + 1
        return WireVersions(v, v, v)

    def for_installs(self, last_versions: Sequence[int]) -> WireVersions:
        """Installs to vehicles that saw ``last_versions`` need a number above each."""
        if any(last >= self.install for last in last_versions):
            v = self.counter + 1
            return WireVersions(self.content, v, v)
        return self

    def for_withdrawal(self) -> tuple[int, WireVersions]:
        """A withdrawal's number (above everything sent so far)."""
        v = self.counter + 1
        return v, WireVersions(self.content, self.install, v)
