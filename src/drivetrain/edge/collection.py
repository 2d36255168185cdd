"""The collection engine: which samples each installed campaign sends, tick by tick. Pure.

``CollectionEngine.process(samples, now_ns)`` takes the samples that arrived since the last
call and returns what to send, per campaign. No I/O, no clock: the same input gives the same
output, so it is tested without a bus, a disk or a broker, and a fleet runner can drive
thousands of engines deterministically.

Rules (docs/edge-agent.md states them for campaign authors):

* **Time-based sampling.** A signal with period *p* is collected at the first sample in each
  period slot ``[k·p, (k+1)·p)`` of the Unix clock, so periods line up across signals and
  vehicles and never drift.
* **Triggers.** The condition is evaluated at every instant one of its signals changes, on the
  latest value of each signal (all values of one instant applied first). Each instant *e* at
  which it holds opens the window ``[e - pre_s, e + post_s]``; overlapping windows merge, so a
  stretch during which the condition holds is captured whole, plus ``pre_s`` before and
  ``post_s`` after. Pre-trigger samples come from a history kept for ``max(pre_s)``. Each
  rising edge is reported as a ``TriggerFired``. A condition is false while a signal it names
  has no value yet.
* **Minimum interval.** Within each stream (a campaign's sampling, each trigger's captures) two
  collected samples of a signal are at least ``min_interval_ms`` apart: a sample is kept when
  it is that far from the previous kept one (greedy, in time order).
* **Once only.** A sample selected by several campaigns or triggers is sent once, in the batch
  of the highest-priority campaign that selected it.
* **Sample cap.** A campaign with ``max_samples_per_signal`` sends at most that many samples of
  each signal (its earliest), counted from when that version was installed; samples beyond the
  cap are not sent by it (another campaign selecting them still may).
* **Default.** While no campaign is installed (or all have expired), the default campaign
  applies: every signal at 1 Hz.
* **Versions.** ``install`` refuses a version older than, or equal to, one already seen for the
  campaign id (a cancelled campaign's version included), so a replayed old campaign never
  replaces a newer one.
"""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from drivetrain.core.errors import VersionConflictError
from drivetrain.edge.campaigns import Campaign, Trigger, default_campaign
from drivetrain.edge.samples import Samples

_NEVER: Final = np.iinfo(np.int64).min // 4  # far past, without overflow when subtracted from
IntArray = npt.NDArray[np.int64]
#: One tick's samples kept for pre-trigger windows: ts, path id, value, sent, newest ts.
_Chunk = tuple[IntArray, npt.NDArray[np.int32], npt.NDArray[np.float64], npt.NDArray[np.bool_], int]
InstallOutcome = Literal["installed", "replaced", "cancelled"]


@dataclass(frozen=True)
class Collected:
    """Samples one campaign selected in one tick."""

    campaign_id: str
    priority: int
    samples: Samples


@dataclass(frozen=True)
class TriggerFired:
    """A trigger's condition became true at ``ts_ns``."""

    campaign_id: str
    trigger: str
    ts_ns: int


@dataclass(frozen=True)
class CollectionResult:
    """What one ``process`` call produced."""

    collected: tuple[Collected, ...]
    fired: tuple[TriggerFired, ...]
    #: Campaigns removed because they expired before this tick.
    expired: tuple[str, ...]

    @property
    def sample_count(self) -> int:
        return sum(len(c.samples) for c in self.collected)


def _thin(
    ts: IntArray,
    pid: npt.NDArray[np.int32],
    rows: npt.NDArray[np.intp],
    min_ns: IntArray,
    last_kept: IntArray,
) -> npt.NDArray[np.intp]:
    """``rows`` less those closer than ``min_ns[path]`` to the previous kept sample of their
    path (greedy in time order, continuing from ``last_kept``); updates ``last_kept``."""
    if not len(rows):
        return rows
    rows = rows[np.lexsort((ts[rows], pid[rows]))]
    pp, tt = pid[rows], ts[rows]
    gap = min_ns[pp]
    previous = np.empty_like(tt)
    previous[0] = last_kept[pp[0]]
    first = np.ones(len(rows), np.bool_)
    first[1:] = pp[1:] != pp[:-1]
    previous[1:] = tt[:-1]
    previous[first] = last_kept[pp[first]]
    ok = tt - previous >= gap
    if not ok.all():
        # Greedy per path that breaks the spacing; a search per kept sample, not per row.
        keep = ok.copy()
        bounds = np.flatnonzero(np.r_[first, True])
        for start, end in itertools.pairwise(bounds.tolist()):
            if ok[start:end].all():
                continue
            times = tt[start:end].tolist()
            step = int(gap[start])
            keep[start:end] = False
            i = bisect.bisect_left(times, int(last_kept[pp[start]]) + step)
            while i < len(times):
                keep[start + i] = True
                i = bisect.bisect_left(times, times[i] + step, lo=i + 1)
        rows, pp, tt = rows[keep], pp[keep], tt[keep]
    np.maximum.at(last_kept, pp, tt)
    return rows


def _grow(array: npt.NDArray[np.generic], size: int, fill: object) -> npt.NDArray[np.generic]:
    if len(array) >= size:
        return array
    out = np.full(size, fill, array.dtype)
    out[: len(array)] = array
    return out


class _TriggerState:
    def __init__(self, campaign: Campaign, trigger: Trigger) -> None:
        self.campaign = campaign
        self.trigger = trigger
        self.paths = list(trigger.expression.signals)
        self.pre_ns = int(trigger.pre_s * 1e9)
        self.post_ns = int(trigger.post_s * 1e9)
        self.capture = np.zeros(0, np.bool_)  # per global path id
        self.slot = np.zeros(0, np.int64)  # global path id -> index in self.paths, -1 if none
        self.min_ns = np.zeros(0, np.int64)
        self.last_kept = np.zeros(0, np.int64)
        self.last_values = np.full(len(self.paths), np.nan)
        self.was_true = False
        self.open_until = int(_NEVER)
        self.considered_until = int(_NEVER)

    def sync(self, paths: Sequence[str]) -> None:
        known = len(self.capture)
        if known == len(paths):
            return
        new = paths[known:]
        self.capture = np.concatenate(
            [
                self.capture,
                np.array([self.campaign.captures(self.trigger, p) for p in new], np.bool_),
            ]
        )
        self.slot = np.concatenate(
            [
                self.slot,
                np.array([self.paths.index(p) if p in self.paths else -1 for p in new], np.int64),
            ]
        )
        self.min_ns = np.concatenate(
            [self.min_ns, np.array([self.campaign.min_interval_ns(p) for p in new], np.int64)]
        )
        self.last_kept = _grow(self.last_kept, len(paths), _NEVER)  # type: ignore[assignment]

    def evaluate(
        self, ts: IntArray, pid: npt.NDArray[np.int32], value: npt.NDArray[np.float64]
    ) -> tuple[IntArray, IntArray]:
        """The instants (of the new, time-sorted rows) at which the condition holds, and the
        instants at which it became true."""
        slot = self.slot[pid]
        rows = np.flatnonzero(slot >= 0)
        if not len(rows):
            return np.empty(0, np.int64), np.empty(0, np.int64)
        t, k, v = ts[rows], slot[rows], value[rows]
        m = len(rows)
        positions = np.arange(m)
        columns = {}
        for j, path in enumerate(self.paths):
            latest = np.maximum.accumulate(np.where(k == j, positions, -1))
            columns[path] = np.where(latest >= 0, v[np.maximum(latest, 0)], self.last_values[j])
        last_of_instant = np.ones(m, np.bool_)
        last_of_instant[:-1] = t[1:] != t[:-1]
        instants = t[last_of_instant]
        at_instants = {p: c[last_of_instant] for p, c in columns.items()}
        holds = self.trigger.expression.evaluate_columns(at_instants, len(instants))
        before = np.empty_like(holds)
        before[0] = self.was_true
        before[1:] = holds[:-1]
        self.was_true = bool(holds[-1])
        self.last_values = np.array([columns[p][-1] for p in self.paths])
        return instants[holds], instants[holds & ~before]

    def capture_rows(
        self, ts: IntArray, pid: npt.NDArray[np.int32], holds_at: IntArray, newest: int
    ) -> npt.NDArray[np.intp]:
        """Rows of the table (``ts``/``pid``) inside this trigger's windows, not seen before."""
        starts = holds_at - self.pre_ns
        ends = holds_at + self.post_ns
        if self.open_until > self.considered_until:
            starts = np.r_[np.int64(_NEVER), starts]
            ends = np.r_[np.int64(self.open_until), ends]
        if not len(starts):
            return np.empty(0, np.intp)
        order = np.argsort(starts, kind="stable")
        starts, ends = starts[order], np.maximum.accumulate(ends[order])
        group = np.ones(len(starts), np.bool_)
        group[1:] = starts[1:] > ends[:-1]
        last = np.r_[np.flatnonzero(group)[1:] - 1, len(starts) - 1]
        window_start, window_end = starts[group], ends[last]
        candidates = np.flatnonzero(self.capture[pid] & (ts > self.considered_until))
        t = ts[candidates]
        i = np.searchsorted(window_start, t, side="right") - 1
        inside = (i >= 0) & (t <= window_end[np.maximum(i, 0)])
        rows = _thin(ts, pid, candidates[inside], self.min_ns, self.last_kept)
        self.open_until = max(self.open_until, int(window_end[-1]))
        self.considered_until = max(self.considered_until, min(newest, self.open_until))
        return rows


class _CampaignState:
    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.period_ns = np.zeros(0, np.int64)
        self.min_ns = np.zeros(0, np.int64)
        self.due_slot = np.zeros(0, np.int64)
        self.last_kept = np.zeros(0, np.int64)
        self.triggers = [_TriggerState(campaign, t) for t in campaign.triggers]

    def sync(self, paths: Sequence[str]) -> None:
        known = len(self.period_ns)
        if known != len(paths):
            new = paths[known:]
            self.period_ns = np.concatenate(
                [self.period_ns, np.array([self.campaign.period_ns(p) for p in new], np.int64)]
            )
            self.min_ns = np.concatenate(
                [self.min_ns, np.array([self.campaign.min_interval_ns(p) for p in new], np.int64)]
            )
            self.due_slot = _grow(self.due_slot, len(paths), _NEVER)  # type: ignore[assignment]
            self.last_kept = _grow(self.last_kept, len(paths), _NEVER)  # type: ignore[assignment]
        for trigger in self.triggers:
            trigger.sync(paths)

    def sample(self, ts: IntArray, pid: npt.NDArray[np.int32]) -> npt.NDArray[np.intp]:
        """Rows of the new, time-sorted samples that time-based sampling collects."""
        period = self.period_ns[pid]
        rows = np.flatnonzero(period > 0)
        if not len(rows):
            return rows
        rows = rows[np.lexsort((ts[rows], pid[rows]))]
        pp = pid[rows]
        slot = ts[rows] // period[rows]
        first = np.ones(len(rows), np.bool_)
        first[1:] = (pp[1:] != pp[:-1]) | (slot[1:] != slot[:-1])
        due = first & (slot >= self.due_slot[pp])
        rows = rows[due]
        np.maximum.at(self.due_slot, pp[due], slot[due] + 1)
        return _thin(ts, pid, rows, self.min_ns, self.last_kept)


class CollectionEngine:
    """Runs the installed campaigns over incoming samples (see the module docstring)."""

    def __init__(self, campaigns: Iterable[Campaign] = ()) -> None:
        self._paths: list[str] = []
        self._path_ids: dict[str, int] = {}
        self._remap_cache: tuple[tuple[str, ...], npt.NDArray[np.int32]] | None = None
        self._states: dict[str, _CampaignState] = {}
        self._versions: dict[str, int] = {}
        self._default = _CampaignState(default_campaign())
        # Samples kept for pre-trigger windows: one chunk per tick, oldest first, each with its
        # newest timestamp so pruning never scans the chunks' rows.
        self._history: deque[_Chunk] = deque()
        # Per capped campaign: its cap and samples sent so far, per global path id.
        self._caps: dict[str, tuple[IntArray, IntArray]] = {}
        for campaign in campaigns:
            self.install(campaign)

    # --- campaigns ---------------------------------------------------------------------------

    @property
    def campaigns(self) -> tuple[Campaign, ...]:
        """The installed campaigns (the default campaign is not listed)."""
        return tuple(s.campaign for s in self._states.values())

    @property
    def versions(self) -> dict[str, int]:
        """The newest version seen per campaign id, cancelled ones included."""
        return dict(self._versions)

    def remember_version(self, campaign_id: str, version: int) -> None:
        """Record that ``version`` of a campaign was seen (restored from the agent's disk)."""
        self._versions[campaign_id] = max(version, self._versions.get(campaign_id, -1))

    def install(self, campaign: Campaign) -> InstallOutcome:
        """Install, replace or (status ``cancelled``) remove a campaign.

        Raises:
            VersionConflictError: the version is not newer than one already seen for this id.
        """
        seen = self._versions.get(campaign.id)
        if seen is not None and campaign.version <= seen:
            raise VersionConflictError(
                f"campaign {campaign.id!r} version {campaign.version} is not newer than "
                f"version {seen} already on the vehicle"
            )
        self._versions[campaign.id] = campaign.version
        replaced = self._states.pop(campaign.id, None) is not None
        self._caps.pop(campaign.id, None)  # a new version counts afresh
        if campaign.status == "cancelled":
            return "cancelled"
        self._states[campaign.id] = _CampaignState(campaign)
        return "replaced" if replaced else "installed"

    def active(self, now_ns: int) -> tuple[Campaign, ...]:
        """The campaigns in force at ``now_ns`` (the default one when none is)."""
        live = tuple(s.campaign for s in self._states.values() if not s.campaign.expired(now_ns))
        return live or (self._default.campaign,)

    def _expire(self, now_ns: int) -> tuple[str, ...]:
        gone = tuple(cid for cid, s in self._states.items() if s.campaign.expired(now_ns))
        for cid in gone:
            del self._states[cid]
        return gone

    # --- samples -----------------------------------------------------------------------------

    def _global_ids(self, samples: Samples) -> npt.NDArray[np.int32]:
        # A source usually sends the same path dictionary every tick (a decoder's map, a fleet
        # runner's model): reuse the last remap instead of a dict lookup per path per tick.
        cached = self._remap_cache
        if cached is not None and (cached[0] is samples.paths or cached[0] == samples.paths):
            return cached[1][samples.path_index]
        remap = np.empty(len(samples.paths), np.int32)
        for i, path in enumerate(samples.paths):
            gid = self._path_ids.get(path)
            if gid is None:
                gid = self._path_ids[path] = len(self._paths)
                self._paths.append(path)
            remap[i] = gid
        self._remap_cache = (samples.paths, remap)
        return remap[samples.path_index]

    def process(self, samples: Samples, now_ns: int) -> CollectionResult:
        """Select what to send from ``samples`` (those that arrived since the last call).

        ``now_ns`` is the vehicle clock, used only for campaign expiry.
        """
        expired = self._expire(now_ns)
        states = list(self._states.values()) or [self._default]
        if not len(samples):
            return CollectionResult((), (), expired)
        pid_new = self._global_ids(samples)
        for state in states:
            state.sync(self._paths)
        order = np.argsort(samples.ts_ns, kind="stable")
        ts_new, pid_new, val_new = samples.ts_ns[order], pid_new[order], samples.value[order]
        newest = int(ts_new[-1]) if len(ts_new) else int(_NEVER)

        holds: dict[int, tuple[IntArray, IntArray]] = {}
        for state in states:
            for trigger in state.triggers:
                holds[id(trigger)] = trigger.evaluate(ts_new, pid_new, val_new)
        needs_history = any(
            len(holds[id(t)][0]) and t.pre_ns > 0 for s in states for t in s.triggers
        )
        if needs_history and self._history:
            h_ts, h_pid, h_val, h_emitted = (
                np.concatenate(c) for c in zip(*(c[:4] for c in self._history), strict=True)
            )
            h = len(h_ts)
            ts = np.concatenate([h_ts, ts_new])
            pid = np.concatenate([h_pid, pid_new])
            val = np.concatenate([h_val, val_new])
            emitted = np.concatenate([h_emitted, np.zeros(len(ts_new), np.bool_)])
        else:
            h = 0
            ts, pid, val = ts_new, pid_new, val_new
            emitted = np.zeros(len(ts_new), np.bool_)

        fired: list[TriggerFired] = []
        selections: list[tuple[int, int, Campaign, npt.NDArray[np.intp]]] = []
        for position, state in enumerate(states):
            parts = [state.sample(ts_new, pid_new) + h]
            for trigger in state.triggers:
                holds_at, rising = holds[id(trigger)]
                fired.extend(
                    TriggerFired(state.campaign.id, trigger.trigger.name, int(t)) for t in rising
                )
                if h or len(holds_at) or trigger.open_until > trigger.considered_until:
                    parts.append(trigger.capture_rows(ts, pid, holds_at, newest))
            rows = np.unique(np.concatenate(parts)) if len(parts) > 1 else parts[0]
            selections.append((-state.campaign.priority, position, state.campaign, rows))

        collected: list[Collected] = []
        paths = tuple(self._paths)
        for _, _, campaign, rows in sorted(selections, key=lambda s: (s[0], s[1])):
            rows = rows[~emitted[rows]]
            if len(rows) and "max_samples_per_signal" in campaign.extra:
                rows = self._within_cap(campaign, rows, ts, pid)
            if len(rows):
                emitted[rows] = True
                rows = rows[np.argsort(ts[rows], kind="stable")]
                collected.append(
                    Collected(
                        campaign.id,
                        campaign.priority,
                        Samples(paths, pid[rows], ts[rows], val[rows]),
                    )
                )
        self._keep_history(states, ts, pid, val, emitted, h, newest)
        return CollectionResult(tuple(collected), tuple(fired), expired)

    def _within_cap(
        self, campaign: Campaign, rows: npt.NDArray[np.intp], ts: IntArray,
        pid: npt.NDArray[np.int32],
    ) -> npt.NDArray[np.intp]:
        """``rows`` less the samples beyond the campaign's cap per signal (earliest kept);
        counts what it keeps."""
        caps, sent = self._caps.get(campaign.id, (np.zeros(0, np.int64), np.zeros(0, np.int64)))
        if len(caps) < len(self._paths):
            new = [campaign.sample_cap(p) for p in self._paths[len(caps):]]
            caps = np.concatenate([caps, np.array(
                [np.iinfo(np.int64).max if c is None else c for c in new], np.int64)])
            sent = np.concatenate([sent, np.zeros(len(new), np.int64)])
        rows = rows[np.lexsort((ts[rows], pid[rows]))]
        p = pid[rows]
        first = np.ones(len(rows), np.bool_)
        first[1:] = p[1:] != p[:-1]
        starts = np.flatnonzero(first)
        nth = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)]))
        keep = sent[p] + nth < caps[p]
        rows = rows[keep]
        np.add.at(sent, pid[rows], 1)
        self._caps[campaign.id] = (caps, sent)
        return rows

    def _keep_history(
        self,
        states: list[_CampaignState],
        ts: IntArray,
        pid: npt.NDArray[np.int32],
        val: npt.NDArray[np.float64],
        emitted: npt.NDArray[np.bool_],
        h: int,
        newest: int,
    ) -> None:
        triggers = [t for s in states for t in s.triggers if t.pre_ns > 0]
        if not triggers:
            self._history.clear()
            return
        horizon = newest - max(t.pre_ns for t in triggers)
        capture = triggers[0].capture
        for t in triggers[1:]:
            capture = capture | t.capture
        if h:  # the history was merged into this tick's table (flags updated): one chunk
            self._history.clear()
        history = self._history
        while history and history[0][4] < horizon:
            history.popleft()
        keep = np.flatnonzero(capture[pid] & (ts >= horizon))
        if len(keep):
            kept_ts = ts[keep]
            history.append((kept_ts, pid[keep], val[keep], emitted[keep], int(kept_ts.max())))

    @property
    def history_rows(self) -> int:
        """Samples held for pre-trigger windows."""
        return sum(len(c[0]) for c in self._history)
