"""Reusable, huge-page aligned array memory for the batch decoder.

Decoding a stream of chunks allocates the same large arrays again and again (the output
columns, the gathered frame columns). Fresh memory costs the kernel a page fault and a zeroed
page on first write, which is about as much as the decoding itself; a :class:`BufferPool`
instead hands out memory it handed out before, once nothing refers to it any more.

A pooled buffer is in use as long as any array made from it exists: every NumPy view (and
anything that exports its memory, such as a pyarrow buffer made from the array) keeps a
reference to the buffer, so its reference count says whether it is free. A caller that keeps
its results therefore never sees them overwritten: the pool allocates fresh memory instead.

Large arrays start on a 2 MiB boundary: NumPy asks the kernel for huge pages for large
arrays, but only whole aligned 2 MiB ranges can get one, so a column written once costs a
handful of page faults instead of one per 4 KiB.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

#: Transparent huge pages on Linux: 2 MiB, and only for ranges aligned to that.
HUGE_PAGE = 2 << 20
#: Arrays smaller than this come from NumPy directly (cheap; the allocator reuses them).
_SMALL = 1 << 18
#: At most this many buffers, and bytes, are kept for reuse.
_MAX_BUFFERS = 24
_MAX_BYTES = 128 << 20
#: sys.getrefcount of a pooled buffer nothing else holds: the pool's list and getrefcount's
#: own argument
_FREE_REFCOUNT = 2


def _span(nbytes: int) -> int:
    """Bytes of a buffer that holds ``nbytes`` (large: from a 2 MiB boundary, whatever the
    buffer's own address)."""
    if nbytes < 2 * HUGE_PAGE:
        return nbytes
    return -(-nbytes // HUGE_PAGE) * HUGE_PAGE + HUGE_PAGE  # whole pages, the last one too


def _new_buffer(nbytes: int) -> npt.NDArray[np.uint8]:
    return np.empty(_span(nbytes), np.uint8)


def _aligned_view(
    buffer: npt.NDArray[np.uint8], nbytes: int, dtype: type[np.generic]
) -> npt.NDArray[Any]:
    skip = -buffer.ctypes.data % HUGE_PAGE if nbytes >= 2 * HUGE_PAGE else 0
    return buffer[skip : skip + nbytes].view(dtype)


class BufferPool:
    """Large uninitialised arrays, in memory reused once no array made from it is alive.

    Safe to share between threads.
    """

    def __init__(self) -> None:
        self._buffers: list[npt.NDArray[np.uint8]] = []
        self._lock = threading.Lock()

    def empty(self, size: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
        """An uninitialised 1-D array of ``size`` elements (2 MiB aligned when large)."""
        nbytes = size * np.dtype(dtype).itemsize
        if nbytes < _SMALL:
            return np.empty(size, dtype)
        needed = _span(nbytes)
        with self._lock:  # choosing and viewing under the lock: the view marks it taken
            free = [
                i
                for i in range(len(self._buffers))  # by index: a loop variable holds a reference
                if sys.getrefcount(self._buffers[i]) == _FREE_REFCOUNT
                and self._buffers[i].nbytes >= needed
            ]
            if free:
                best = min(free, key=lambda i: self._buffers[i].nbytes)
                return _aligned_view(self._buffers[best], nbytes, dtype)
            fresh = _new_buffer(nbytes)
            self._keep(fresh)
            return _aligned_view(fresh, nbytes, dtype)

    def _keep(self, fresh: npt.NDArray[np.uint8]) -> None:
        """Pool ``fresh``, forgetting the oldest buffers to stay in bounds."""
        if fresh.nbytes > _MAX_BYTES // 4:
            return
        self._buffers.append(fresh)
        while (
            len(self._buffers) > _MAX_BUFFERS or sum(b.nbytes for b in self._buffers) > _MAX_BYTES
        ):
            # a buffer still in use stays alive with its user
            self._buffers.pop(0)
