"""The region's minimisation policy over the air: the rules the vehicle applies at the source.

An agent starts with the rules of its provisioned region from the policy file it was started
with (``core.privacy_policy``). The operator's policy then reaches it as the signed command
:data:`POLICY_COMMAND`, ``{"region": "EU", "version": N, "rules": {<the region's entry of
the policy format>}}``: precision rules and the categories off until consent. The agent
applies a newer version at once (coarsening from its next tick, and — while the cloud has sent
it no consent — collecting the region's new default), keeps it across restarts, and
acknowledges it. Refused, changing nothing: an older or equal version (a re-delivery or a
replayed push cannot bring back an older, laxer policy), another region's rules, a malformed
or oversized body; a command not signed by the cloud never gets here (the downlink guard).
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from drivetrain.core.errors import BadInputError
from drivetrain.core.privacy_policy import RegionPolicy, region_from_dict

#: The command that sets the minimisation rules of the vehicle's region.
POLICY_COMMAND: Final = "privacy.policy"
#: Most precision rules, and signals per rule, one command may carry.
MAX_RULES: Final = 256
_ARGS: Final = frozenset({"region", "version", "rules"})


@dataclass(frozen=True)
class PolicyInForce:
    """The region's rules the cloud last sent (``version`` -1 and ``rules`` None: none yet,
    the rules of the file the agent started with apply)."""

    record: ClassVar[str] = "privacy_policy"

    region: str = ""
    version: int = -1
    rules: Mapping[str, Any] | None = field(default=None, compare=False)

    def policy(self) -> RegionPolicy | None:
        """The rules as a :class:`RegionPolicy` (None when the cloud sent none)."""
        return None if self.rules is None else region_from_dict(self.region, self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "version": self.version,
            "rules": None if self.rules is None else dict(self.rules),
        }

    @classmethod
    def from_dict(cls, data: object) -> PolicyInForce:
        """Read a stored record (its rules are checked again when the agent restores it).

        Raises:
            BadInputError: not an object, or a field of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise BadInputError(f"policy record is {type(data).__name__}; expected an object")
        region, version, rules = data.get("region", ""), data.get("version", -1), data.get("rules")
        if (
            not isinstance(region, str)
            or isinstance(version, bool)
            or not isinstance(version, int)
            or not (rules is None or isinstance(rules, Mapping))
        ):
            raise BadInputError(
                "policy record: expected region (text), version (whole number) "
                "and rules (an object or null)"
            )
        return cls(region, version, rules)

    def updated(self, args: Mapping[str, Any], region: str) -> tuple[PolicyInForce, RegionPolicy]:
        """The policy the command ``args`` sets for a vehicle of ``region``, if newer.

        Raises:
            BadInputError: a malformed body (names the field), rules of another region, more
                than :data:`MAX_RULES` rules or signals in a rule, or a version not newer than
                the one in force.
        """
        unknown = sorted(set(map(str, args)) - _ARGS)
        if unknown:
            raise BadInputError(
                f"policy: unknown field(s) {', '.join(unknown)}; expected region, version and rules"
            )
        version = args.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 2**63:
            raise BadInputError(f"policy.version is {version!r:.40}; expected a whole number >= 0")
        if args.get("region") != region:
            raise BadInputError(
                f"policy.region is {args.get('region')!r:.20}; this vehicle "
                f"is in region {region or '(none)'!r}"
            )
        rules = args.get("rules")
        if not isinstance(rules, Mapping):
            raise BadInputError("policy.rules: expected the region's entry of the policy")
        precision = rules.get("precision", [])
        if isinstance(precision, list) and (
            len(precision) > MAX_RULES
            or any(
                isinstance(r, Mapping)
                and isinstance(r.get("signals"), list)
                and len(r["signals"]) > MAX_RULES
                for r in precision
            )
        ):
            raise BadInputError(
                f"policy.rules.precision: more than {MAX_RULES} rules or signals in a rule"
            )
        policy = region_from_dict(region, rules, "policy.rules")
        if version <= self.version:
            raise BadInputError(
                f"policy version {version} is not newer than version {self.version} in force"
            )
        return PolicyInForce(region, version, dict(rules)), policy


def describe(record: PolicyInForce, policy: RegionPolicy) -> str:
    """One line for the acknowledgement: what the vehicle applies now."""
    rules = "; ".join(f"{', '.join(r.signals)}: {r.describe()}" for r in policy.precision)
    off = ", ".join(sorted(policy.default_off)) or "nothing"
    return (
        f"policy {record.region} version {record.version} in force: off until consent: "
        f"{off}; precision: {rules or 'as measured'}"
    )[:1000]
