"""The CAN feeder between each vehicle's decoder and its edge agent: on change, plus a heartbeat.

A bus repeats most values many times a second (a 10 ms message carries the same speed a
hundred times while it does not change). Vehicle software that turns CAN into VSS — Eclipse
Kuksa's ``dbc2val`` feeder in front of its databroker is the open example — forwards a signal
when its value changes and at least once per interval, rather than every frame. The simulated
vehicles do the same, for the whole fleet in one vectorised pass over the decoder's output:

    a decoded value is forwarded when it is the first of its (vehicle, message, signal) in the
    window, when it differs from the previous value of that signal, or when it is the first in
    a new slot ``[k·interval, (k+1)·interval)`` of the vehicle clock.

Campaign semantics survive the filter: a trigger condition is evaluated at every instant one
of its signals changes, and every change is forwarded; time-based sampling takes the first
sample of each period slot, and with periods that are whole multiples of the interval (the
default campaign's 1 s with the default 1 s interval) that sample is forwarded. What the filter
removes is the repetition of unchanged values, which carries no information. ``interval_s=0``
forwards every decoded value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivetrain.core.can import DecodedSignals


@dataclass(frozen=True)
class CanFeeder:
    """Which decoded values reach the edge agent (see the module docstring).

    Attributes:
        interval_s: the heartbeat interval, seconds (0: forward every value).
        clock_offset_s: seconds to add to a decoded timestamp to get the vehicle clock's slot
            grid (the Unix time of simulation time 0, modulo the interval).

    Raises:
        ValueError: a negative or non-finite interval.
    """

    interval_s: float = 1.0
    clock_offset_s: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.interval_s) and self.interval_s >= 0):
            raise ValueError(
                f"interval_s must be a finite number >= 0 seconds, got {self.interval_s!r}"
            )

    def forwarded(
        self, decoded: DecodedSignals, window: tuple[float, float] | None = None
    ) -> npt.NDArray[np.intp]:
        """Rows of ``decoded`` to forward, in the decoder's order.

        Relies on the decoder's row order — grouped by message, then signal, in capture order
        within each signal — with captures ordered by vehicle (bus), then time. ``window`` is
        the ``[start, end)`` of the frames' nominal times: when it lies within one interval
        slot, no value inside it can start a new slot and the slot test is skipped.
        """
        n = len(decoded)
        if n == 0 or self.interval_s == 0:
            return np.arange(n, dtype=np.intp)
        keep = np.empty(n, np.bool_)
        keep[0] = True
        tail = keep[1:]
        np.not_equal(decoded.bus[1:], decoded.bus[:-1], out=tail)
        scratch = np.empty(n - 1, np.bool_)
        for column in (decoded.signal_index, decoded.message_index, decoded.value):
            np.not_equal(column[1:], column[:-1], out=scratch)
            tail |= scratch
        if window is None or self._slot(window[0]) != self._slot(np.nextafter(window[1], -np.inf)):
            slot = np.floor((decoded.timestamp_s + self.clock_offset_s) / self.interval_s)
            np.not_equal(slot[1:], slot[:-1], out=scratch)
            tail |= scratch
        return np.flatnonzero(keep)

    def _slot(self, t_s: float) -> float:
        return float(np.floor((t_s + self.clock_offset_s) / self.interval_s))
