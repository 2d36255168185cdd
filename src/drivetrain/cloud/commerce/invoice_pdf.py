"""An invoice as a PDF document (fpdf2, the ``commerce`` extra), the same content as the HTML
page: seller, customer, vehicle, lines, net, tax, total, paid and refunded.

The built-in PDF fonts cover Latin-1; a character outside it is printed as ``?`` rather than
refused (an invoice is always produced).
"""

from __future__ import annotations

import importlib
from decimal import Decimal

from drivetrain.cloud.commerce.billing import Invoice
from drivetrain.cloud.commerce.money import format_amount
from drivetrain.core.errors import ConfigurationError


class MissingPdfExtraError(ConfigurationError):
    """PDF invoices need fpdf2: ``pip install 'drivetrain[commerce]'``."""


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


def render_invoice_pdf(invoice: Invoice, seller: str) -> bytes:
    """The invoice as PDF bytes.

    Raises:
        MissingPdfExtraError: fpdf2 is not installed.
    """
    try:
        fpdf = importlib.import_module("fpdf")
    except ModuleNotFoundError as e:
        raise MissingPdfExtraError(
            "PDF invoices need fpdf2, which is not installed: pip install 'drivetrain[commerce]'"
        ) from e

    def money(minor: int) -> str:
        return f"{format_amount(minor, invoice.currency)} {invoice.currency}"

    pdf = fpdf.FPDF(format="A4")
    pdf.set_title(f"Invoice {invoice.invoice_id}")
    pdf.set_creator("Drivetrain")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, _latin1(f"Invoice {invoice.invoice_id}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for label, value in (("Seller", seller), ("Customer", invoice.account_id),
                         ("Vehicle", invoice.vin or "-"), ("Region", invoice.region),
                         ("Issued", invoice.issued_at.isoformat()), ("Status", invoice.status)):
        pdf.cell(0, 6, _latin1(f"{label}: {value}"), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    with pdf.table(col_widths=(100, 15, 35, 35), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
                   first_row_as_headings=True) as table:
        table.row(["Item", "Qty", "Unit price", "Amount"])
        for line in invoice.lines:
            table.row([_latin1(line.description), str(line.quantity), money(line.unit_minor),
                       money(line.amount_minor)])
    pdf.ln(4)
    rate = f"{Decimal(invoice.tax_rate) * 100:f}".rstrip("0").rstrip(".")
    for label, minor in (("Net", invoice.net_minor), (f"Tax ({rate} %)", invoice.tax_minor),
                         ("Total", invoice.total_minor), ("Paid", invoice.paid_minor),
                         ("Refunded", invoice.refunded_minor)):
        pdf.set_font("Helvetica", "B" if label == "Total" else "", 10)
        pdf.cell(0, 6, _latin1(f"{label}: {money(minor)}"), align="R", new_x="LMARGIN",
                 new_y="NEXT")
    return bytes(pdf.output())
