"""Big numbers and far dates are 422s naming the field, never database errors (both
engines): ids and offsets beyond 64 bits, instants beyond the 64-bit nanosecond range, and
offsets that push an instant out of the calendar once shifted to UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivetrain.cloud.infra.http.params import EARLIEST, LATEST

S = "2025-01-01T00:00:00Z"
BEYOND_64_BITS = str(2**64)
GETS = [
    (f"/v1/telemetry/signals?start={S}&end=2262-04-12T00:00:00Z", "query.end"),
    (f"/v1/telemetry/signals?start={S}&end=9999-12-31T00:00:00Z", "query.end"),
    (f"/v1/telemetry/signals?start=0001-01-01T00:00:00Z&end={S}", "query.start"),
    (f"/v1/telemetry/aggregate?path=Vehicle.Speed&start={S}&end=9999-12-31T00:00:00Z",
     "query.end"),
    (f"/v1/telemetry/aggregate?path=Vehicle.Speed&start={S}&end=2262-04-12T00:00:00Z",
     "query.end"),
    ("/v1/twins/WVWZZZ1JZXW000001/history?path=Vehicle.Speed&end=9999-12-31T00:00:00Z",
     "query.end"),
    ("/v1/twins/WVWZZZ1JZXW000001/history?path=Vehicle.Speed&end=2262-04-12T00:00:00Z",
     "query.end"),
    ("/v1/ingest/dead-letters?since=0001-01-01T00:00:00%2B14:00", "query.since"),
    ("/v1/ingest/dead-letters?until=9999-12-31T23:59:59-12:00", "query.until"),
    (f"/v1/ingest/dead-letters?after_id={BEYOND_64_BITS}", "query.after_id"),
    (f"/v1/ingest/dead-letters/{BEYOND_64_BITS}", "path.dead_letter_id"),
    (f"/v1/audit?after_seq={BEYOND_64_BITS}", "query.after_seq"),
]
REPLAYS = [
    ({"ids": [2**64]}, "body.ids.0"),
    ({"since": "0001-01-01T00:00:00+14:00"}, "body.since"),
    ({"until": "9999-12-31T23:59:59-12:00"}, "body.until"),
]


@pytest.fixture
def headers(client: TestClient, operator: Any, get_token: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {get_token(operator)}"}


@pytest.mark.parametrize(("url", "field"), GETS)
def test_far_dates_and_huge_ids_are_422_naming_the_field(
    client: TestClient, headers: dict[str, str], url: str, field: str,
) -> None:
    response = client.get(url, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(("body", "field"), REPLAYS)
def test_replay_with_far_dates_or_huge_ids_is_422(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], field: str,
) -> None:
    response = client.post("/v1/ingest/dead-letters/replay", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


def test_a_since_with_a_plus_14_offset_in_range_is_answered(
    client: TestClient, headers: dict[str, str],
) -> None:
    for url in ("/v1/ingest/dead-letters?since=2025-01-01T00:00:00%2B14:00",
                "/v1/ingest/dead-letters?until=2262-04-10T10:00:00-12:00",
                "/v1/telemetry/signals?start=2025-01-01T00:00:00%2B14:00&end=2262-04-10T00:00:00Z"):
        assert client.get(url, headers=headers).status_code == 200, url


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moment=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
       offset_min=st.integers(-14 * 60, 14 * 60))
def test_fuzz_any_instant_with_any_offset_is_200_or_422(
    client: TestClient, headers: dict[str, str], moment: datetime, offset_min: int,
) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    text = aware.isoformat()
    for url, params in (
        ("/v1/ingest/dead-letters", {"since": text}),
        ("/v1/ingest/dead-letters", {"until": text}),
        ("/v1/telemetry/signals", {"start": text, "end": LATEST.isoformat()}),
        ("/v1/telemetry/signals", {"start": EARLIEST.isoformat(), "end": text}),
    ):
        response = client.get(url, params=params, headers=headers)
        try:
            as_utc = aware.astimezone(UTC)
            inside = EARLIEST <= as_utc <= LATEST
        except OverflowError:
            inside = False
        if inside:
            assert response.status_code in (200, 422), response.text
            if response.status_code == 422:  # only the range check of start/end itself
                assert "is not after start" in response.json()["detail"], response.text
        else:
            assert response.status_code == 422, response.text
