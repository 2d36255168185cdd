"""After the bus has been fuzzed: the vehicle's own payloads stop being a reference.

Fuzzing puts frames of many ids the vehicle never sends on the bus; the ECUs react — fault
states, limp modes, diagnostic bytes — and keep sending, at their genuine period and with their
genuine counters, payloads no benign drive showed. Those frames are the vehicle's reaction, not
more intrusion (ROAD labels them benign: in fuzzing_attack_1, 6,664 frames on 18 ids during and
after the attack), and payload novelty cannot tell them from a forged payload.

So once a burst of unknown ids — :data:`BURST_IDS` distinct ids the model never saw, within
:data:`BURST_WINDOW_S` — confirms the intrusion, the detectors that judge payloads alone
(novelty, ranges, bit flips, cross-signal relations) are capped below the alert threshold for
the rest of the stream: their frames still rank by score, but the alert rests on what the
reaction does not change — ids the vehicle never sends, frames off their id's period, broken
counters. A frame the payload detectors would have flagged is then still linked to as the
previous frame of its id (the reaction is the id's new normal); when the frame after it breaks
the id's counter or comes early, the blame lies with that earlier frame — a fuzzing frame on a
known id, not the genuine frame after it — and the later frame is not flagged. A single unknown id (a diagnostic tool, an ECU the training drives missed) does not
open the context; nothing changes on a bus that was never fuzzed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from drivetrain.edge.ids.stream import BatchView, previous_accepted

#: Distinct unknown ids within :data:`BURST_WINDOW_S` that confirm fuzzing.
BURST_IDS = 3
BURST_WINDOW_S = 1.0
#: Payload-only scores in the context are mapped to ``CEILING * s / (1 + s)``: below the alert
#: threshold, order kept.
CEILING = 0.99
#: The detectors whose judgement rests on payloads alone (capped in the context).
PAYLOAD_ONLY = frozenset(
    {
        "byte_value",
        "constant_bit",
        "bit_flip",
        "byte_range",
        "cross_signal",
        "cross_value",
        "signal_range",
    }
)
#: The detectors that compare a frame with the previous accepted frame of its id.
AGAINST_PREVIOUS = frozenset({"counter", "timing"})


class FuzzingContext:
    """Per stream: since when the bus is known to be fuzzed (``inf``: not so far)."""

    def __init__(self) -> None:
        self.since = np.inf
        self._recent: dict[int, float] = {}  # unknown id key -> when it was last seen

    def update(self, times: npt.NDArray[np.float64], unknown_keys: npt.NDArray[np.int64]) -> None:
        """Feed the times and id keys of a batch's unknown-id frames (in time order)."""
        if np.isfinite(self.since) or not len(times):
            return
        distinct = np.unique(unknown_keys)
        if len(distinct) + len(self._recent) < BURST_IDS:
            # too few ids for a burst (a flood of one id): remember when each was last seen
            last = len(times) - 1 - np.unique(unknown_keys[::-1], return_index=True)[1]
            self._recent.update(zip(distinct.tolist(), times[last].tolist(), strict=True))
            self._forget(float(times[-1]))
            return
        for t, key in zip(times.tolist(), unknown_keys.tolist(), strict=True):
            self._recent[key] = t
            if len(self._recent) >= BURST_IDS:
                self._forget(t)
                if len(self._recent) >= BURST_IDS:
                    self.since = t
                    self._recent = {}
                    return

    def _forget(self, now: float) -> None:
        self._recent = {k: s for k, s in self._recent.items() if now - s < BURST_WINDOW_S}

    def covers(self, times: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """Which frames come after the fuzzing was confirmed."""
        out: npt.NDArray[np.bool_] = times >= self.since
        return out


def cap(scores: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Normalised scores with those under ``mask`` mapped below the alert threshold."""
    if not mask.any():
        return scores
    out: npt.NDArray[np.float64] = np.where(mask, CEILING * scores / (1.0 + scores), scores)
    return out


class ReactionGuard:
    """What one stream knows of fuzzing: whether the bus is fuzzed, and which ids' last
    accepted frame is one the payload detectors would have flagged."""

    def __init__(self, rows: int) -> None:
        self.context = FuzzingContext()
        self.last_suspect = np.zeros(rows, np.bool_)
        self.reaction = np.zeros(0, np.bool_)
        self.suspect = np.zeros(0, np.bool_)

    def begin(self, view: BatchView, unknown_row: int, keys: npt.NDArray[np.int64]) -> None:
        """Start a batch; ``keys`` are the id keys of its frames."""
        unknown = view.row == unknown_row
        if unknown.any():
            self.context.update(view.time[unknown], keys[unknown])
        self.reaction = self.context.covers(view.time) & ~unknown
        self.suspect = np.zeros(len(view), np.bool_)

    def judge(self, name: str, scores: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """A detector's normalised scores as they count in this batch."""
        if name in PAYLOAD_ONLY and self.reaction.any():
            self.suspect |= self.reaction & (scores > 1.0)
            return cap(scores, self.reaction)
        return scores

    def blamed_on_previous(
        self, view: BatchView, accepted: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.bool_]:
        """Frames in the context whose previous accepted frame of their id was a suspect."""
        if not self.reaction.any():
            return self.reaction
        prev = previous_accepted(view.row, view.order, accepted)
        ref = np.where(prev >= 0, self.suspect[np.maximum(prev, 0)], self.last_suspect[view.row])
        out: npt.NDArray[np.bool_] = ref & self.reaction
        return out

    def end(self, view: BatchView, accepted: npt.NDArray[np.bool_]) -> None:
        """Remember, per id, whether its last accepted frame of the batch was a suspect."""
        kept = np.flatnonzero(accepted)
        self.last_suspect[view.row[kept]] = self.suspect[kept]  # time order: the last one wins
