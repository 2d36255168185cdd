"""Reusable, huge-page aligned array memory for the batch decoder.

Decoding a stream of chunks allocates the same large arrays again and again (the output
columns, the gathered frame columns). Fresh memory costs the kernel a page fault and a zeroed
page on first write, which is about as much as the decoding itself; a :class:`BufferPool`
instead hands out memory it handed out before, once nothing refers to it any more.

A pooled buffer is in use as long as any array made from it exists: every NumPy view (and
anything that exports its memory, such as a pyarrow buffer made from the array) keeps a
reference to the buffer, so its reference count says whether it is free. A caller that keeps
its results therefore never sees them overwritten: the pool allocates fresh memory instead.
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
_MAX_BYTES = 512 << 20
#: sys.getrefcount of a pooled buffer nothing else holds: the pool's list, the loop variable
#: and getrefcount's own argument
_FREE_REFCOUNT = 3


def empty_aligned(size: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """An uninitialised 1-D array that starts on a 2 MiB boundary when it is large.

    NumPy asks the kernel for huge pages for large arrays, but only whole aligned 2 MiB ranges
    can get one; an output column written once then costs a handful of page faults instead of
    one per 4 KiB. Small arrays are plain.
    """
    nbytes = size * np.dtype(dtype).itemsize
    if nbytes < 2 * HUGE_PAGE:
        return np.empty(size, dtype)
    return _aligned_view(_new_buffer(nbytes), nbytes, dtype)


def _new_buffer(nbytes: int) -> npt.NDArray[np.uint8]:
    span = -(-nbytes // HUGE_PAGE) * HUGE_PAGE  # whole huge pages, so the last one is too
    return np.empty(span + HUGE_PAGE, np.uint8)


def _aligned_view(buffer: npt.NDArray[np.uint8], nbytes: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    skip = -buffer.ctypes.data % HUGE_PAGE
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
        needed = nbytes + HUGE_PAGE  # room to align whatever the buffer's own address
        with self._lock:  # choosing and viewing under the lock: the view marks it taken
            best = -1
            for i, buffer in enumerate(self._buffers):
                if (
                    sys.getrefcount(buffer) == _FREE_REFCOUNT
                    and buffer.nbytes >= needed
                    and (best < 0 or buffer.nbytes < self._buffers[best].nbytes)
                ):
                    best = i
            if best >= 0:
                return _aligned_view(self._buffers[best], nbytes, dtype)
            fresh = _new_buffer(nbytes)
            self._keep(fresh)
            return _aligned_view(fresh, nbytes, dtype)

    def _keep(self, fresh: npt.NDArray[np.uint8]) -> None:
        """Pool ``fresh``, first dropping free buffers (smallest first) to stay in bounds."""
        if fresh.nbytes > _MAX_BYTES // 4:
            return
        self._buffers.append(fresh)
        while (
            len(self._buffers) > _MAX_BUFFERS or sum(b.nbytes for b in self._buffers) > _MAX_BYTES
        ):
            # forget the oldest other buffer (a buffer still in use stays alive with its user)
            self._buffers.pop(0)
