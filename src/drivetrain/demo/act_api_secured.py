"""Act "API secured": tokens, scopes and tenants are enforced, and every change is audited.

Against the running HTTP API, as a client would: a call without a token is refused; the
bootstrap admin creates a tenant; that tenant's admin exchanges its credentials for a token and
creates a read-only client; the read-only client is refused a write (scope), the tenant admin
is refused another tenant's data (tenant), and once the read-only client is disabled its live
token is refused too. Finally the tenant's audit log must list exactly these changes, with the
right actors, and its hash chain must verify.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from drivetrain.demo.acts import Act, ActResult, DemoContext, Figure

NAME = "api-secured"
TITLE = "API secured: tokens, scopes, tenants, audit log"
HTTP_TIMEOUT_S = 10.0


@dataclass
class _Probe:
    """The calls made and the first one that did not answer as expected."""

    http: httpx.Client
    calls: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)

    def call(
        self,
        method: str,
        path: str,
        expect: int,
        *,
        token: str | None = None,
        json: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.request(method, path, headers=headers, json=json, data=data)
        self.calls += 1
        if response.status_code != expect:
            self.failures.append(
                f"{method} {path} answered {response.status_code}, expected {expect}: "
                f"{response.text[:160]}"
            )
            return {}
        if expect in (401, 403):
            self.refused += 1
        body = response.json()
        return body if isinstance(body, dict) else {"items": body}


def _free_tenant_id(probe: _Probe, admin_token: str, seed: int) -> str:
    existing = probe.call("GET", "/v1/tenants", 200, token=admin_token).get("items", [])
    taken = {t["tenant_id"] for t in existing}
    run = 1
    while f"demo-{seed}-{run}" in taken:  # a kept data dir may hold earlier runs' tenants
        run += 1
    return f"demo-{seed}-{run}"


def _token(probe: _Probe, client: dict[str, Any]) -> str:
    body = probe.call(
        "POST",
        "/v1/auth/token",
        200,
        data={
            "grant_type": "client_credentials",
            "client_id": client.get("client_id", ""),
            "client_secret": client.get("client_secret", ""),
        },
    )
    return str(body.get("access_token", ""))


def run(context: DemoContext) -> ActResult:
    """Play the act (see the module docstring)."""
    platform = context.platform
    with httpx.Client(base_url=platform.api_url, timeout=HTTP_TIMEOUT_S) as http:
        probe = _Probe(http)
        context.report("a call without a token", fraction=0.05)
        probe.call("GET", "/v1/auth/whoami", 401)
        probe.call("GET", "/v1/auth/whoami", 200, token=platform.admin_token)
        tenant = _free_tenant_id(probe, platform.admin_token, context.seed)
        context.report(f"operator admin creates tenant {tenant!r}", fraction=0.2)
        created = probe.call(
            "POST",
            "/v1/tenants",
            201,
            token=platform.admin_token,
            json={"tenant_id": tenant, "display_name": "Demo fleet operator"},
        )
        tenant_admin = created.get("admin_client", {})
        admin_token = _token(probe, tenant_admin)
        context.check_time()
        context.report("tenant admin creates a read-only client", fraction=0.4)
        reader = probe.call(
            "POST",
            f"/v1/tenants/{tenant}/clients",
            201,
            token=admin_token,
            json={"role": "read_only", "name": "dashboard"},
        )
        reader_token = _token(probe, reader)
        context.report("wrong scope, wrong tenant, revoked client: refused", fraction=0.6)
        probe.call(
            "POST",
            f"/v1/tenants/{tenant}/clients",
            403,
            token=reader_token,
            json={"role": "read_only", "name": "escalation"},
        )
        probe.call("GET", "/v1/tenants/default/clients", 403, token=admin_token)
        probe.call(
            "POST",
            f"/v1/tenants/{tenant}/clients/{reader.get('client_id')}/disable",
            200,
            token=admin_token,
        )
        probe.call("GET", "/v1/auth/whoami", 401, token=reader_token)
        context.check_time()
        context.report("reading the tenant's audit log", fraction=0.8)
        entries = probe.call("GET", "/v1/audit", 200, token=admin_token).get("entries", [])
        chain = probe.call("GET", "/v1/audit/verify", 200, token=admin_token)
    operator_id = platform.admin_credentials.client_id
    expected = [
        ("tenant.create", operator_id),
        ("client.create", operator_id),
        ("client.create", tenant_admin.get("client_id")),
        ("client.disable", tenant_admin.get("client_id")),
    ]
    actual = [(e["action"], e["actor"]) for e in entries]
    figures: dict[str, Figure] = {
        "requests": probe.calls,
        "refused": probe.refused,
        "audit_entries": len(entries),
        "tenant": tenant,
    }
    if probe.failures:
        more = f" (+{len(probe.failures) - 1} more)" if len(probe.failures) > 1 else ""
        return ActResult(False, probe.failures[0] + more, figures)
    if actual != expected:
        return ActResult(
            False, f"audit log of {tenant!r} holds {actual}, expected {expected}", figures
        )
    if not chain.get("ok"):
        return ActResult(False, f"audit chain of {tenant!r} does not verify: {chain}", figures)
    check = (
        f"{probe.refused} calls refused as they must be (no token, wrong scope, other tenant, "
        f"revoked client); {len(entries)} changes audited with their actors, hash chain of "
        f"{chain.get('entries_checked')} entries verified"
    )
    return ActResult(True, check, figures)


API_SECURED = Act(name=NAME, title=TITLE, run=run, weight=0.5)
