"""An invoice as a self-contained HTML page (printable; every value escaped)."""

from __future__ import annotations

from decimal import Decimal
from html import escape

from drivetrain.cloud.commerce.billing import Invoice
from drivetrain.cloud.commerce.money import format_amount


def render_invoice_html(invoice: Invoice, seller: str) -> str:
    """The invoice as an HTML document: seller, customer, lines, net, tax, total, status."""

    def money(minor: int) -> str:
        return f"{format_amount(minor, invoice.currency)} {invoice.currency}"

    rows = "".join(
        f"<tr><td>{escape(line.description)}</td><td class=n>{line.quantity}</td>"
        f"<td class=n>{escape(money(line.unit_minor))}</td>"
        f"<td class=n>{escape(money(line.amount_minor))}</td></tr>"
        for line in invoice.lines
    )
    rate = f"{Decimal(invoice.tax_rate) * 100:f}".rstrip("0").rstrip(".")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Invoice {escape(invoice.invoice_id)}</title>
<style>body{{font-family:sans-serif;max-width:48rem;margin:2rem auto}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #ccc;padding:.3rem}}
.n{{text-align:right}}</style></head>
<body>
<h1>Invoice {escape(invoice.invoice_id)}</h1>
<p>Seller: {escape(seller)}<br>Customer: {escape(invoice.account_id)}<br>
Vehicle: {escape(invoice.vin or "-")}<br>Region: {escape(invoice.region)}<br>
Issued: {escape(invoice.issued_at.isoformat())}<br>Status: <strong>{escape(invoice.status)}</strong></p>
<table><thead><tr><th>Item</th><th class=n>Qty</th><th class=n>Unit price</th>
<th class=n>Amount</th></tr></thead><tbody>{rows}</tbody></table>
<p class=n>Net: {escape(money(invoice.net_minor))}<br>
Tax ({escape(rate)} %): {escape(money(invoice.tax_minor))}<br>
<strong>Total: {escape(money(invoice.total_minor))}</strong><br>
Paid: {escape(money(invoice.paid_minor))}<br>Refunded: {escape(money(invoice.refunded_minor))}</p>
</body></html>
"""
