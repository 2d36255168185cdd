"""Parameter types the API's routes share: instants within the range every store can hold.

Telemetry, twin history and vehicle events keep time as 64-bit nanoseconds since the epoch
(1677-09-21 to 2262-04-11); the state database's drivers cannot take a year outside 1..9999
once shifted to UTC. An instant outside the common range is a 422 naming the field, not a
database error (``end=9999-12-31``, ``since=0001-01-01T00:00:00+14:00``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import AfterValidator

#: The range of instants the API accepts (inside the 64-bit nanosecond range, whole days).
EARLIEST: Final = datetime(1677, 9, 22, tzinfo=UTC)
LATEST: Final = datetime(2262, 4, 11, tzinfo=UTC)


def check_instant(value: datetime) -> datetime:
    """``value`` if it lies in [:data:`EARLIEST`, :data:`LATEST`] (naive values read as UTC).

    Raises ``ValueError`` (a 422 naming the field) otherwise.
    """
    try:
        offset = value.utcoffset()
        as_utc = value.replace(tzinfo=None) - offset if offset is not None else value
        in_range = EARLIEST.replace(tzinfo=None) <= as_utc.replace(tzinfo=None) <= \
            LATEST.replace(tzinfo=None)
    except OverflowError:
        in_range = False
    if not in_range:
        raise ValueError(
            f"{value.isoformat()} is out of range; expected an instant between "
            f"{EARLIEST.date().isoformat()} and {LATEST.date().isoformat()} (UTC)"
        )
    return value


#: A datetime parameter or field within the range every store can hold.
Instant = Annotated[datetime, AfterValidator(check_instant)]
