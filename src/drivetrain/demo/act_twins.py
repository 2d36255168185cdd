"""Act "Desired state converges": a charge limit set on a query-selected group reaches the cars.

The closed loop, with every piece real: simulated vehicles (``drivetrain.sim.fleet``, half
registered in the EU, half in the US) each run the edge agent, which sends signed telemetry on
the in-process bus; the ingest worker (the platform's, or one for the act, see
``fleet_ingest``) verifies it and feeds the twins' reported state (and the lake). The act then, through the live HTTP API as an operator would:

1. waits until every vehicle's twin reports its charge limit;
2. opens the change stream (server-sent events) for ``converged`` changes of the group;
3. selects the group with a fleet query — the EU cars of this act — and sets a new charge limit
   on all of them at once (``POST /v1/twins/desired``);
4. the platform's reconciler publishes each twin's delta, signed with the cloud key; each
   agent verifies it, the simulated vehicle applies it, reports it back and acknowledges;
5. watches ``/v1/twins/reconciliation`` until every selected twin shows the item converged,
   and prints the time to converge (p50 and max).

Its check: every selected twin converged and none failed, as many ``converged`` events
streamed, the cars outside the group kept their limit (no desired value on their twins), and
the charge limit's history (served from the lake) ends at the new value.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure
from drivetrain.demo.fleet_session import fleet_identities, running_fleet
from drivetrain.sim.fleet import CHARGE_LIMIT, FleetPlan, FleetRunner, FleetSpec, plan_fleet

NAME = "twins-converge"
TITLE = "Desired state converges: a charge limit on a query-selected group"
TENANT = "default"  # the bootstrap admin's tenant, so the demo's token may act on it
OWNER = "desired-state demo"  # recorded on this act's cars in the registry
HTTP_TIMEOUT_S = 10.0
POLL_S = 0.2
#: Where the cars' credential files go, under the demo's data dir.
CREDENTIALS_DIR = "twins-demo-cars"
#: Charge limits to choose from: the first that no car of the group reports already.
TARGETS = (80, 85, 75, 70)


def _running_fleet(context: DemoContext, plan: FleetPlan) -> AbstractContextManager[FleetRunner]:
    """The fleet driving in real time, its telemetry and acks ingested, until exit."""
    identities = fleet_identities(context, plan, tenant=TENANT, owner=OWNER,
                                  actor=f"demo:{NAME}", folder=context.data_dir / CREDENTIALS_DIR)
    return running_fleet(context, plan, identities)


def _stream_converged(
    api_url: str, token: str, query: str, count: int, timeout_s: float, out: list[dict[str, Any]],
    opened: threading.Event,
) -> None:
    """Collect ``converged`` events of the query's twins from the change stream."""
    params: dict[str, Any] = {"query": query, "kind": "converged", "max_events": count,
                              "timeout_s": timeout_s}
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(HTTP_TIMEOUT_S, read=None)
    with (
        httpx.Client(base_url=api_url, timeout=timeout) as http,
        http.stream("GET", "/v1/twins/changes", params=params, headers=headers) as response,
    ):
        for line in response.iter_lines():
            if line.startswith(": connected"):
                opened.set()
            elif line.startswith("data:"):
                out.append(json.loads(line.split(":", 1)[1]))
    opened.set()


def run(context: DemoContext) -> ActResult:
    """Play the act (see the module docstring)."""
    platform = context.platform
    spec = FleetSpec(vehicles=context.vehicles, seed=context.seed + 7_001, regions=("EU", "US"))
    plan = plan_fleet(spec)
    group = [v.vin for v in plan.vehicles if v.region == "EU"]
    others = [v.vin for v in plan.vehicles if v.region != "EU"]
    # The group: this act's EU cars (a kept data dir may hold other runs' cars, parked).
    query = f'region == "EU" and vin in [{", ".join(json.dumps(v) for v in plan_vins(plan))}]'
    figures: dict[str, Figure] = {"vehicles": len(plan.vehicles), "selected": len(group)}
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    context.report(f"starting {len(plan.vehicles)} cars with edge agents", fraction=0.05)
    started = datetime.now(UTC)
    with _running_fleet(context, plan), httpx.Client(
        base_url=platform.api_url, headers=headers, timeout=HTTP_TIMEOUT_S
    ) as http:
        reported = _await_reported(context, http, plan, started)
        target = next(t for t in TARGETS if t not in reported.values())
        streamed: list[dict[str, Any]] = []
        opened = threading.Event()
        watcher = threading.Thread(
            target=_stream_converged,
            args=(platform.api_url, platform.admin_token, query, len(group),
                  max(1.0, context.remaining_s() - 1.0), streamed, opened),
            daemon=True,
        )
        watcher.start()
        opened.wait(HTTP_TIMEOUT_S)
        context.report(f"query selects {len(group)} EU cars; setting charge limit {target} %",
                       fraction=0.4)
        answer = http.post("/v1/twins/desired", json={
            "query": query, "values": {CHARGE_LIMIT: target}, "ttl_s": 3600,
        })
        answer.raise_for_status()
        figures["matched"] = answer.json()["matched"]
        summary = _await_convergence(context, http, query, len(group))
        watcher.join(max(0.0, min(5.0, context.remaining_s())))
        history = _history_tail(http, group[0]) if group else None
        untouched = [v for v in others if http.get(f"/v1/twins/{v}").json()["desired"]]
    p50, worst = summary["time_to_converge_p50_s"], summary["time_to_converge_max_s"]
    figures.update({
        "converged": summary["converged"], "failed": summary["failed"],
        "converge_p50_s": round(p50, 3) if p50 is not None else "-",
        "converge_max_s": round(worst, 3) if worst is not None else "-",
        "events": len(streamed),
    })
    problems = []
    if figures["matched"] != len(group) or summary["converged"] != len(group):
        problems.append(f"{summary['converged']} of {len(group)} selected twins converged "
                        f"(matched {figures['matched']}, pending {summary['pending']}, "
                        f"failed {summary['failed']}: {summary['failure_reasons']})")
    if len(streamed) != len(group):
        problems.append(f"the change stream sent {len(streamed)} converged events, "
                        f"expected {len(group)}")
    if untouched:
        problems.append(f"cars outside the group got desired state: {untouched}")
    if group and history != target:
        problems.append(f"the charge-limit history of {group[0]} ends at {history}, not {target}")
    if problems:
        return ActResult(False, "; ".join(problems), figures)
    check = (
        f"charge limit {target} % set by query on {len(group)} EU cars: all converged "
        f"(time to converge p50 {p50:.2f} s, max {worst:.2f} s), {len(streamed)} converged "
        f"events streamed, {len(others)} cars outside the group untouched, history ends at "
        f"{target} %"
    ) if group else "no EU car in a one-vehicle fleet outside the EU; nothing to converge"
    return ActResult(True, check, figures)


def plan_vins(plan: FleetPlan) -> list[str]:
    """The VINs of the planned cars."""
    return [v.vin for v in plan.vehicles]


def _await_reported(
    context: DemoContext, http: httpx.Client, plan: FleetPlan, since: datetime
) -> dict[str, Any]:
    """Each car's charge limit, once every twin holds one stored after ``since`` (a kept data
    dir holds values from earlier runs)."""
    fresh: dict[str, Any] = {}
    while True:
        for vin in plan_vins(plan):
            if vin in fresh:
                continue
            value = http.get(f"/v1/twins/{vin}").json()["reported"].get(CHARGE_LIMIT)
            if value is not None and datetime.fromisoformat(value["updated_at"]) >= since:
                fresh[vin] = value["value"]
        context.report(f"{len(fresh)} of {len(plan.vehicles)} twins report their charge limit",
                       fraction=0.1 + 0.2 * len(fresh) / len(plan.vehicles))
        if len(fresh) == len(plan.vehicles):
            return fresh
        context.check_time()
        time.sleep(2 * POLL_S)


def _await_convergence(
    context: DemoContext, http: httpx.Client, query: str, selected: int
) -> dict[str, Any]:
    """The reconciliation summary once no item of the group is pending (or time is up)."""
    while True:
        summary: dict[str, Any] = http.get(
            "/v1/twins/reconciliation", params={"query": query, "path": CHARGE_LIMIT}
        ).json()
        context.report(
            f"{summary['converged']} of {selected} twins converged, {summary['pending']} pending",
            fraction=0.45 + 0.5 * summary["converged"] / max(1, selected),
            figures={"converged": summary["converged"], "pending": summary["pending"]},
        )
        if summary["pending"] == 0 or context.remaining_s() < 2.0:
            return summary
        time.sleep(POLL_S)


def _history_tail(http: httpx.Client, vin: str) -> Any:
    """The last charge-limit value in the lake for ``vin`` over the last ten minutes."""
    now = datetime.now(UTC)
    params = {"path": CHARGE_LIMIT, "start": (now - timedelta(minutes=10)).isoformat(),
              "end": (now + timedelta(minutes=10)).isoformat(), "purpose": "fleet_operations"}
    points = http.get(f"/v1/twins/{vin}/history", params=params).json().get("points", [])
    return points[-1]["value"] if points else None


TWINS_CONVERGE = Act(name=NAME, title=TITLE, run=run, weight=1.0, min_budget_s=10.0)
