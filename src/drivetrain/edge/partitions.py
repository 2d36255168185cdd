"""Upload conditions per data partition: a campaign's ``upload`` field, checked and applied.

A campaign may split what it collects into named partitions, each uploaded only while its
condition holds — ``when`` (an expression over the vehicle's latest signal values, e.g.
``Vehicle.Powertrain.TractionBattery.Charging.IsCharging == true``) and, with
``link: unmetered``, only while the vehicle's link is unmetered. Samples of signals no
partition names are uploaded at once. A sample selected by several partitions belongs to the
first that names it. Pure: the agent (``agent/uploads.py``) holds the samples and asks
:meth:`UploadPartition.open` each tick.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from drivetrain.core.errors import CampaignFormatError, ExpressionSyntaxError, UnknownSignalError
from drivetrain.core.vss import Catalog
from drivetrain.edge.expressions import Expression, parse_expression

MAX_PARTITIONS: Final = 8
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_KEYS: Final = frozenset({"name", "signals", "when", "link"})


@dataclass(frozen=True)
class UploadPartition:
    """One partition of a campaign's data and when it may be uploaded.

    Attributes:
        name: the partition's id within its campaign (``bulk``).
        signals: selectors of the signals it holds.
        when: the condition for uploading (None: no condition besides the link).
        unmetered_only: upload only while the link is unmetered.
    """

    name: str
    signals: tuple[str, ...]
    when: Expression | None = None
    unmetered_only: bool = False

    def open(self, latest: Mapping[str, object], unmetered_link: bool) -> bool:
        """Whether the partition's data may go now: its link rule and its condition on the
        ``latest`` values (a condition on a signal with no value yet is false)."""
        if self.unmetered_only and not unmetered_link:
            return False
        return self.when is None or self.when.evaluate(latest)


def parse_partitions(
    value: Any, where: str, catalog: Catalog,
    selectors: Callable[[Any, str], tuple[str, ...]],
) -> tuple[UploadPartition, ...]:
    """The partitions of a campaign's ``upload`` field (None: none).

    ``selectors(value, where)`` checks a list of signal selectors against the catalog (the
    campaign parser's own check).

    Raises:
        CampaignFormatError: not a list of at most 8 partitions; a partition with an unknown
            field, a bad or repeated name, bad selectors, a condition that does not parse, a
            link other than 'any'/'unmetered', or no condition at all. Names the field.
    """
    if value is None:
        return ()
    where = f"{where}: field 'upload'"
    if not isinstance(value, list) or len(value) > MAX_PARTITIONS:
        raise CampaignFormatError(f"{where} is {value!r}; expected a list of at most "
                                  f"{MAX_PARTITIONS} partitions")
    out: list[UploadPartition] = []
    for i, partition in enumerate(value):
        at = f"{where}: partition {i + 1}"
        if not isinstance(partition, Mapping):
            raise CampaignFormatError(f"{at}: expected an object, got {partition!r}")
        unknown = sorted(set(partition) - _KEYS)
        if unknown:
            raise CampaignFormatError(f"{at}: unknown fields {unknown}; expected name, "
                                      "signals, when, link")
        name = partition.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise CampaignFormatError(f"{at}: field 'name' is {name!r}; expected an id like "
                                      "'bulk'")
        if any(p.name == name for p in out):
            raise CampaignFormatError(f"{at}: name {name!r} repeats")
        signals = selectors(partition.get("signals"), f"{at} ({name}): field 'signals'")
        text = partition.get("when")
        when = None
        if text is not None:
            if not isinstance(text, str):
                raise CampaignFormatError(f"{at} ({name}): field 'when' is {text!r}; expected "
                                          "a condition such as 'Vehicle.Powertrain."
                                          "TractionBattery.Charging.IsCharging == true'")
            try:
                when = parse_expression(text, catalog)
            except (ExpressionSyntaxError, UnknownSignalError) as e:
                raise CampaignFormatError(f"{at} ({name}): field 'when' {text!r}: {e}") from e
        link = partition.get("link", "any")
        if link not in ("any", "unmetered"):
            raise CampaignFormatError(f"{at} ({name}): field 'link' is {link!r}; expected "
                                      "'any' or 'unmetered'")
        if when is None and link == "any":
            raise CampaignFormatError(f"{at} ({name}): no 'when' and link 'any' uploads at "
                                      "once; give a condition or link 'unmetered'")
        out.append(UploadPartition(name, signals, when, link == "unmetered"))
    return tuple(out)
