"""`drivetrain commerce`: the feature catalog, subscriptions, invoices, entitlements and
revenue, through the API (``drivetrain.commands.api_client``; scopes ``commerce:read`` and
``commerce:write``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from drivetrain.commands.api_client import (
    JsonOption,
    TokenOption,
    UrlOption,
    api_call,
    api_client,
)
from drivetrain.commands.db import fail
from drivetrain.commands.output import cell, format_cell, print_renderable, safe

app = typer.Typer(help="Features sold after the sale: catalog, subscriptions, billing, "
                  "entitlements.", no_args_is_help=True)
catalog_app = typer.Typer(help="The feature catalog.", no_args_is_help=True)
subscription_app = typer.Typer(help="Subscriptions of vehicles to offers.",
                               no_args_is_help=True)
invoice_app = typer.Typer(help="Invoices.", no_args_is_help=True)
entitlement_app = typer.Typer(help="Signed entitlements held by vehicles.",
                              no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
app.add_typer(subscription_app, name="subscription")
app.add_typer(invoice_app, name="invoice")
app.add_typer(entitlement_app, name="entitlement")
_out = Console(highlight=False)
SubscriptionArg = Annotated[str, typer.Argument(help="The subscription id (sub-...).")]


def _emit(document: object) -> None:
    typer.echo(json.dumps(document, indent=2))


@catalog_app.command("put")
def catalog_put(
    token: TokenOption,
    file: Annotated[Path | None, typer.Argument(help="The catalog JSON (docs/commerce.md).")
                    ] = None,
    example: Annotated[bool, typer.Option("--example", help="Put the example catalog that "
                                          "ships with Drivetrain.")] = False,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check a catalog document and store it as the next version."""
    if (file is None) == (not example):
        fail("give a catalog FILE or --example", code=2)
    from drivetrain.cloud.commerce.catalog import example_catalog  # the cloud: only here

    document: Any = example_catalog()
    if file is not None:
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            fail(f"cannot read catalog file {file}: {e}", code=2)
    with api_client(url, token) as client:
        stored = api_call(client, "PUT", "/v1/commerce/catalog", json=document).json()
    if as_json:
        _emit(stored)
        return
    _out.print(f"catalog version {stored['version']}: {len(stored['features'])} feature(s), "
               f"{len(stored['offers'])} offer(s)")


@catalog_app.command("show")
def catalog_show(token: TokenOption, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """The catalog in force: offers with their prices per region."""
    with api_client(url, token) as client:
        catalog = api_call(client, "GET", "/v1/commerce/catalog").json()
    if as_json:
        _emit(catalog)
        return
    names = {f["code"]: f["name"] for f in catalog["features"]}
    table = Table("offer", "features", "billing", Column("prices", overflow="fold"), "trial",
                  title=Text(f"catalog version {catalog['version']}"))
    for o in catalog["offers"]:
        prices = ", ".join(f"{r} {p['amount']} {p['currency']}" for r, p in o["prices"].items())
        _row(table, o["id"], ", ".join(names[c] for c in o["features"]),
                      o["billing"] + (f" per {o['unit']}" if o["unit"] else ""), prices,
                      f"{o['trial_days']} d" if o["trial_days"] else "-")
    print_renderable(table, _out)


@app.command("pay-with")
def pay_with(
    account: Annotated[str, typer.Argument(help="The customer account, e.g. driver:alice.")],
    method: Annotated[str, typer.Argument(help="The payment method, e.g. test_card_ok.")],
    token: TokenOption,
    url: UrlOption = None,
) -> None:
    """Set the payment method an account's subscriptions are charged to."""
    with api_client(url, token) as client:
        api_call(client, "PUT", f"/v1/commerce/accounts/{account}/payment-method",
                 json={"payment_method": method})
    _out.print(f"{safe(account)} pays with {safe(method)}")


def _row(table: Table, *values: object) -> None:
    """One table row of data from the API: every cell plain text, control characters escaped
    (account ids, descriptions and vehicles' answers are user- or vehicle-supplied)."""
    table.add_row(*(cell(v) for v in values))


def _sub_line(s: dict[str, Any]) -> str:
    end = s["period_end"] or "no end"
    extra = " (cancels at period end)" if s["cancel_at_period_end"] else ""
    reason = f" — {s['end_reason']}" if s["end_reason"] else ""
    return (f"[bold]{safe(s['subscription_id'])}[/] {safe(s['offer_id'])} for "
            f"{safe(s['vin'] or '(no vehicle)')} by {safe(s['account_id'])}: "
            f"{safe(s['status'])}{extra}, {safe(s['price'])} {safe(s['currency'])} "
            f"{safe(s['billing'])}, until {safe(end)}{safe(reason)}")


@app.command("buy")
def buy(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.")],
    offer: Annotated[str, typer.Argument(help="The offer id, e.g. boost-monthly.")],
    token: TokenOption,
    account: Annotated[str, typer.Option("--account", help="Who pays, e.g. driver:alice.")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """Buy an offer for a vehicle: the car gets its signed entitlement within seconds."""
    with api_client(url, token) as client:
        sub = api_call(client, "POST", "/v1/commerce/subscriptions",
                       json={"vin": vin, "account_id": account, "offer_id": offer}).json()
    if as_json:
        _emit(sub)
        return
    _out.print(_sub_line(sub))


@subscription_app.command("list")
def subscription_list(
    token: TokenOption,
    vin: Annotated[str | None, typer.Option("--vin", help="Only this vehicle's.")] = None,
    account: Annotated[str | None, typer.Option("--account", help="Only this account's.")
                       ] = None,
    state: Annotated[str | None, typer.Option("--status", help="Only this status.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The tenant's subscriptions, newest first."""
    params: dict[str, Any] = {"limit": limit, "vin": vin, "account_id": account,
                              "status": state}
    with api_client(url, token) as client:
        subs = api_call(client, "GET", "/v1/commerce/subscriptions",
                        params={k: v for k, v in params.items() if v is not None}).json()
    rows = subs["subscriptions"]
    if as_json:
        _emit(rows)
        return
    if not rows:
        _out.print("no subscriptions" + (" match" if vin or account or state else
                                         " yet: sell one with `drivetrain commerce buy`"))
        return
    table = Table(Column("subscription", no_wrap=True), "vehicle", "account", "offer",
                  "status", "price", Column("period end", no_wrap=True))
    for s in rows:
        _row(table, s["subscription_id"], s["vin"] or "-", s["account_id"], s["offer_id"],
                      s["status"] + (" (cancels)" if s["cancel_at_period_end"] else ""),
                      f"{s['price']} {s['currency']}", s["period_end"] or "-")
    print_renderable(table, _out)


@subscription_app.command("show")
def subscription_show(subscription_id: SubscriptionArg, token: TokenOption,
                      url: UrlOption = None, as_json: JsonOption = False) -> None:
    """One subscription, and which of its features the car confirmed through its twin."""
    with api_client(url, token) as client:
        sub = api_call(client, "GET", f"/v1/commerce/subscriptions/{subscription_id}").json()
    if as_json:
        _emit(sub)
        return
    _out.print(_sub_line(sub))
    if sub["vin"]:
        confirmed = sub.get("confirmed_by_car") or []
        waiting = [f for f in sub["features"] if f not in confirmed]
        _out.print("confirmed by the car (twin): "
                   + (safe(", ".join(confirmed)) if confirmed else "none yet")
                   + (f"; not confirmed: {safe(', '.join(waiting))}" if waiting else ""))


@subscription_app.command("cancel")
def subscription_cancel(
    subscription_id: SubscriptionArg, token: TokenOption,
    now: Annotated[bool, typer.Option("--now", help="End it now, not at period end.")] = False,
    refund: Annotated[bool, typer.Option("--refund", help="With --now: refund the unused "
                                         "part of the period.")] = False,
    url: UrlOption = None, as_json: JsonOption = False,
) -> None:
    """Cancel at the end of the paid period (default) or now."""
    with api_client(url, token) as client:
        sub = api_call(client, "POST", f"/v1/commerce/subscriptions/{subscription_id}/cancel",
                       json={"at_period_end": not now, "refund_unused": refund}).json()
    if as_json:
        _emit(sub)
        return
    _out.print(_sub_line(sub))


@subscription_app.command("change")
def subscription_change(
    subscription_id: SubscriptionArg, offer: Annotated[str, typer.Argument(
        help="The offer to move to, e.g. boost-yearly.")],
    token: TokenOption, url: UrlOption = None, as_json: JsonOption = False,
) -> None:
    """Upgrade or downgrade: the new offer is charged from now, the unused time refunded."""
    with api_client(url, token) as client:
        sub = api_call(client, "POST", f"/v1/commerce/subscriptions/{subscription_id}/change",
                       json={"offer_id": offer}).json()
    _emit(sub) if as_json else _out.print(_sub_line(sub))


@subscription_app.command("pause")
def subscription_pause(subscription_id: SubscriptionArg, token: TokenOption,
                       url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Pause: the feature goes off and the period stops."""
    with api_client(url, token) as client:
        sub = api_call(client, "POST",
                       f"/v1/commerce/subscriptions/{subscription_id}/pause").json()
    _emit(sub) if as_json else _out.print(_sub_line(sub))


@subscription_app.command("resume")
def subscription_resume(subscription_id: SubscriptionArg, token: TokenOption,
                        url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Resume a paused subscription (the period is extended by the pause)."""
    with api_client(url, token) as client:
        sub = api_call(client, "POST",
                       f"/v1/commerce/subscriptions/{subscription_id}/resume").json()
    _emit(sub) if as_json else _out.print(_sub_line(sub))


@app.command("transfer")
def transfer(
    vin: Annotated[str, typer.Argument(help="The vehicle sold.")],
    token: TokenOption,
    to: Annotated[str, typer.Option("--to", help="The new owner's account.")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """A vehicle changes owner: vehicle-bound features stay, account-bound ones leave."""
    with api_client(url, token) as client:
        changed = api_call(client, "POST", f"/v1/commerce/vehicles/{vin}/transfer",
                           json={"new_account_id": to}).json()["subscriptions"]
    if as_json:
        _emit(changed)
        return
    if not changed:
        _out.print(f"{safe(vin)} has no live subscription; nothing to transfer")
    for s in changed:
        _out.print(_sub_line(s))


@entitlement_app.command("list")
def entitlement_list(
    vin: Annotated[str, typer.Argument(help="The vehicle's VIN.")],
    token: TokenOption,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The signed entitlements a vehicle holds, whether it acknowledged them, and whether its
    twin shows them confirmed by the car."""
    with api_client(url, token) as client:
        rows = api_call(client, "GET",
                        f"/v1/commerce/vehicles/{vin}/entitlements").json()["entitlements"]
    if as_json:
        _emit(rows)
        return
    if not rows:
        _out.print(f"{safe(vin)} holds no entitlement: none was ever bought for it")
        return
    table = Table("feature", "status", "seq", Column("valid until", no_wrap=True), "grace",
                  "delivery", "twin", "in the car", Column("vehicle's answer", overflow="fold"))
    for e in rows:
        car = (f"{e['car_state']} (seq {e['car_seq']})" if e["car_state"] else "-")
        twin = {"confirmed": "confirmed by the car"}.get(e["twin"], e["twin"] or "-")
        _row(table, e["feature"], e["status"], str(e["seq"]), e["expires_at"],
             f"{e['grace_s']} s", e["delivery"] or "-", twin, car, e["vehicle_detail"] or "")
    print_renderable(table, _out)


@invoice_app.command("list")
def invoice_list(
    token: TokenOption,
    account: Annotated[str | None, typer.Option("--account", help="Only this account's.")
                       ] = None,
    state: Annotated[str | None, typer.Option("--status", help="open, paid, refunded.")
                     ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 100,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """The tenant's invoices, newest first."""
    params = {k: v for k, v in {"limit": limit, "account_id": account, "status": state}.items()
              if v is not None}
    with api_client(url, token) as client:
        rows = api_call(client, "GET", "/v1/commerce/invoices", params=params).json()[
            "invoices"]
    if as_json:
        _emit(rows)
        return
    if not rows:
        _out.print("no invoices" + (" match" if account or state else " yet"))
        return
    table = Table(Column("invoice", no_wrap=True), "account", "vehicle", "region", "total",
                  "status", Column("issued", no_wrap=True))
    for i in rows:
        _row(table, i["invoice_id"], i["account_id"], i["vin"] or "-", i["region"],
                      f"{i['total']} {i['currency']}", i["status"], i["issued_at"])
    print_renderable(table, _out)


@invoice_app.command("show")
def invoice_show(
    invoice_id: Annotated[str, typer.Argument(help="The invoice id (inv-...).")],
    token: TokenOption,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the printable "
                                              "page to this file.")] = None,
    pdf: Annotated[Path | None, typer.Option("--pdf", help="Also write the PDF to this file.")
                   ] = None,
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """One invoice: lines, net, tax, total."""
    with api_client(url, token) as client:
        invoice = api_call(client, "GET", f"/v1/commerce/invoices/{invoice_id}").json()
        if html is not None:
            page = api_call(client, "GET", f"/v1/commerce/invoices/{invoice_id}/html").text
            html.write_text(page, encoding="utf-8")
        if pdf is not None:
            pdf.write_bytes(api_call(client, "GET",
                                     f"/v1/commerce/invoices/{invoice_id}/pdf").content)
    if as_json:
        _emit(invoice)
        return
    table = Table(Column("item", overflow="fold"), "qty", "amount (minor units)",
                  title=Text(format_cell(
                      f"{invoice['invoice_id']} {invoice['status']}: {invoice['total']} "
                      f"{invoice['currency']} (tax {invoice['tax_minor']} at "
                      f"{invoice['tax_rate']})")))
    for line in invoice["lines"]:
        _row(table, line["description"], str(line["quantity"]), str(line["amount_minor"]))
    print_renderable(table, _out)


@app.command("revenue")
def revenue(token: TokenOption, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Recognised revenue per region, and subscriptions by status."""
    with api_client(url, token) as client:
        report = api_call(client, "GET", "/v1/commerce/revenue").json()
    if as_json:
        _emit(report)
        return
    if not report["regions"]:
        _out.print("no revenue yet: nothing has been invoiced")
    else:
        table = Table("region", "revenue", "currency")
        for r in report["regions"]:
            _row(table, r["region"], r["revenue"], r["currency"])
        print_renderable(table, _out)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report["subscriptions"].items()))
    _out.print(f"subscriptions: {counts or 'none'}")


@app.command("statement")
def statement(
    partner: Annotated[str, typer.Argument(help="The partner, e.g. routewise.")],
    token: TokenOption,
    since: Annotated[str, typer.Option("--since", help="Start, ISO 8601 with a zone.")],
    until: Annotated[str, typer.Option("--until", help="End (exclusive), ISO 8601 with a zone.")],
    url: UrlOption = None,
    as_json: JsonOption = False,
) -> None:
    """A partner's revenue-share statement: its features' invoiced lines and its share."""
    with api_client(url, token) as client:
        report = api_call(client, "GET", f"/v1/commerce/partners/{partner}/statement",
                          params={"since": since, "until": until}).json()
    if as_json:
        _emit(report)
        return
    if not report["lines"]:
        _out.print(f"no invoiced line of {safe(partner)}'s features between {safe(since)} and "
                   f"{safe(until)}")
        return
    table = Table(Column("invoice", no_wrap=True), Column("item", overflow="fold"),
                  "net (minor)", "share (minor)", "currency")
    for line in report["lines"]:
        _row(table, line["invoice_id"], line["description"], str(line["amount_minor"]),
                      str(line["share_minor"]) + (" (refunded)" if line["refunded"] else ""),
                      line["currency"])
    print_renderable(table, _out)
    _out.print("share due: " + ", ".join(f"{safe(v)} {safe(c)} minor units"
                                         for c, v in sorted(report["share_minor"].items())))
