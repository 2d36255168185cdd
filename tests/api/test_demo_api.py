"""``GET /v1/demo``: the demo's acts as they happen, to the tenant that runs the demo only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from drivetrain.api.demo_routes import DemoBoard


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_deployment_without_a_demo_answers_none(
    client: TestClient, operator: Any, get_token: Callable[..., str]
) -> None:
    response = client.get("/v1/demo", headers=bearer(get_token(operator)))
    assert response.status_code == 200, response.text
    assert response.json() == {"state": "none", "version": 0, "started_at": None,
                               "finished_at": None, "acts": []}
    assert client.get("/v1/demo").status_code == 401


def test_the_board_shows_each_act_pending_running_then_its_verdict_to_its_tenant_only(
    app: FastAPI, client: TestClient, operator: Any, get_token: Callable[..., str],
    new_tenant: Callable[[str], Any], new_client: Callable[..., Any],
) -> None:
    board = app.state.demo_board = DemoBoard(tenant=operator.tenant)
    board.plan([("can-roundtrip", "CAN bus to VSS signals"), ("twins", "Digital twins"),
                ("ota", "Signed updates")])
    reader = bearer(get_token(new_client(operator, "read_only")))

    def acts() -> list[tuple[str, str, str]]:
        body = client.get("/v1/demo", headers=reader).json()
        return [(a["name"], a["state"], a["line"]) for a in body["acts"]]

    assert acts() == [("can-roundtrip", "pending", ""), ("twins", "pending", ""),
                      ("ota", "pending", "")]
    board.start(1, 12.0)
    board.progress("decoding frames", 0.5)
    assert acts()[0] == ("can-roundtrip", "running", "decoding frames")
    before = client.get("/v1/demo", headers=reader).json()["version"]
    board.finish(1, "passed", "12,400 frames decoded", 3.2)
    board.start(2, 10.0)
    board.finish(2, "timeout", "timed out after 10.5 s", 10.5)
    board.finish(3, "skipped", "not run: an earlier act did not stop", 0.0)
    body = client.get("/v1/demo", headers=reader).json()
    assert body["version"] > before and body["state"] == "finished" and body["finished_at"]
    assert [(a["state"], a["outcome"]) for a in body["acts"]] == [
        ("passed", "passed"), ("failed", "timeout"), ("skipped", "skipped")]
    assert body["acts"][0]["elapsed_s"] == 3.2 and body["acts"][0]["budget_s"] == 12.0
    board.serving()
    assert client.get("/v1/demo", headers=reader).json()["state"] == "serving"
    # another tenant's clients see no demo
    other = bearer(get_token(new_tenant("globex")))
    assert client.get("/v1/demo", headers=other).json()["acts"] == []


def test_the_board_refuses_an_act_it_does_not_hold_and_an_unknown_verdict() -> None:
    board = DemoBoard(tenant="default")
    board.plan([("one", "One")])
    with pytest.raises(ValueError, match="act 2"):
        board.start(2, 1.0)
    with pytest.raises(ValueError, match="verdict"):
        board.finish(1, "maybe", "?", 0.0)
    board.progress("x" * 10_000)  # no act running: nothing to say it on
    assert board.snapshot().acts[0].line == ""
