"""What the agent holds back: samples of upload partitions whose condition does not hold yet,
and the latest value of every signal (the conditions and trigger reports read them).

``HeldUploads.split`` takes what a campaign collected in a tick and returns what goes at once;
samples of a partition (``Campaign.partitions``) wait until ``release`` finds the partition
open — its ``when`` condition holds on the latest values and, for ``unmetered`` partitions, the
link is unmetered. Held samples live in memory, at most ``max_samples`` per partition (the
oldest are dropped first and counted): a restart loses what was held, as a full
store-and-forward buffer loses its lowest priorities.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from drivetrain.edge.campaigns import Campaign
from drivetrain.edge.samples import Samples

#: Samples held per partition before the oldest are dropped.
DEFAULT_MAX_HELD: Final = 200_000


class LatestValues:
    """The latest value (by measurement time) of the signals asked for, as VSS scalars."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[int, float]] = {}

    def update(self, samples: Samples, paths: AbstractSet[str]) -> None:
        """Take the newest sample in ``samples`` of each of ``paths`` (the signals something
        reads: upload conditions, DTC counts — not every signal, to keep ticks cheap)."""
        if not len(samples) or not paths:
            return
        wanted = np.array([p in paths for p in samples.paths], np.bool_)[samples.path_index]
        if not wanted.any():
            return
        rows = np.flatnonzero(wanted)
        order = rows[np.lexsort((samples.ts_ns[rows], samples.path_index[rows]))]
        index = samples.path_index[order]
        last = np.flatnonzero(np.r_[index[1:] != index[:-1], True])
        for row in order[last].tolist():
            path = samples.paths[int(samples.path_index[row])]
            ts = int(samples.ts_ns[row])
            known = self._values.get(path)
            if known is None or ts >= known[0]:
                self._values[path] = (ts, float(samples.value[row]))

    def get(self, path: str) -> float | None:
        """The latest value of ``path``, or None when it was never seen."""
        known = self._values.get(path)
        return None if known is None else known[1]

    def as_mapping(self) -> dict[str, object]:
        """Path → latest value (what an expression evaluates on)."""
        return {path: value for path, (_, value) in self._values.items()}


@dataclass
class _Held:
    priority: int
    parts: list[Samples] = field(default_factory=list)
    rows: int = 0


class HeldUploads:
    """Samples held per (campaign, partition) until the partition opens (see the module
    docstring)."""

    def __init__(self, max_samples: int = DEFAULT_MAX_HELD) -> None:
        self.max_samples = max_samples
        self._held: dict[tuple[str, str], _Held] = {}
        #: Held samples dropped as the oldest beyond ``max_samples``, per campaign.
        self.dropped: Counter[str] = Counter()

    @property
    def rows(self) -> int:
        """Samples held now, over every partition."""
        return sum(h.rows for h in self._held.values())

    def held(self, campaign_id: str, partition: str) -> int:
        """Samples held now for one partition."""
        entry = self._held.get((campaign_id, partition))
        return 0 if entry is None else entry.rows

    def split(self, campaign: Campaign, priority: int, samples: Samples) -> Samples:
        """Hold the samples of ``campaign``'s partitions; return the rest (to send at once)."""
        if not campaign.partitions or not len(samples):
            return samples
        owner = [campaign.partition_of(p) for p in samples.paths]
        names = np.array([-1 if o is None else campaign.partitions.index(o) for o in owner],
                         np.int32)[samples.path_index]
        for number, partition in enumerate(campaign.partitions):
            mine = names == number
            if mine.any():
                self._hold(campaign.id, partition.name, priority, samples.take(mine))
        return samples.take(names < 0)

    def _hold(self, campaign_id: str, name: str, priority: int, samples: Samples) -> None:
        entry = self._held.setdefault((campaign_id, name), _Held(priority))
        entry.parts.append(samples)
        entry.rows += len(samples)
        if entry.rows > self.max_samples:
            whole = Samples.concat(entry.parts)
            excess = entry.rows - self.max_samples
            self.dropped[campaign_id] += excess
            entry.parts, entry.rows = [whole.take(np.arange(excess, len(whole)))], self.max_samples

    def release(
        self, campaigns: Mapping[str, Campaign], latest: LatestValues, unmetered_link: bool
    ) -> list[tuple[int, str, Samples]]:
        """``(priority, campaign id, samples)`` of every partition open now (no longer held);
        partitions of campaigns no longer installed are dropped."""
        out: list[tuple[int, str, Samples]] = []
        values = latest.as_mapping() if self._held else {}
        for key in list(self._held):
            campaign_id, name = key
            campaign = campaigns.get(campaign_id)
            partition = None if campaign is None else next(
                (p for p in campaign.partitions if p.name == name), None)
            if partition is None:
                self.dropped[campaign_id] += self._held.pop(key).rows
                continue
            if partition.open(values, unmetered_link):
                entry = self._held.pop(key)
                out.append((entry.priority, campaign_id, Samples.concat(entry.parts)))
        return out

    def forget(self, campaign_ids: Iterable[str]) -> None:
        """Drop what is held for these campaigns (expired or withdrawn)."""
        gone = set(campaign_ids)
        for key in [k for k in self._held if k[0] in gone]:
            self.dropped[key[0]] += self._held.pop(key).rows
