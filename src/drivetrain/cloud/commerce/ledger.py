"""The double-entry billing ledger (pure): every money movement is one balanced transaction.

An entry's amount is signed minor units: positive is a debit, negative a credit. A
transaction is refused unless its entries sum to zero in each currency, so the ledger as a
whole always balances. Accounts are named ``kind:detail``:

| account | kind of account | debited when | credited when |
|---|---|---|---|
| ``receivable:{customer}`` | asset | an invoice is issued | the customer pays, a credit note |
| ``cash:{provider}`` | asset | a payment is captured | a refund is paid out |
| ``revenue:{region}`` | income | a refund or credit note | an invoice is issued |
| ``tax:{region}`` | liability | a refund or credit note | an invoice is issued |
| ``payable:{partner}`` | liability | — | a third party's share of revenue is due |

The functions here build the transactions of the billing events; the service stores them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from drivetrain.cloud.commerce.money import check_currency

ACCOUNT_KINDS: Final = ("receivable", "cash", "revenue", "tax", "payable")


class UnbalancedTransactionError(ValueError):
    """A transaction whose debits and credits differ (a programming error, never stored)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One side of a transaction: signed minor units on an account (debit > 0 > credit)."""

    account: str
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        kind = self.account.partition(":")[0]
        if kind not in ACCOUNT_KINDS or ":" not in self.account:
            raise ValueError(f"account {self.account!r}; expected kind:detail with kind in "
                             f"{ACCOUNT_KINDS}")
        if isinstance(self.amount_minor, bool) or not isinstance(self.amount_minor, int):
            raise TypeError(f"amount {self.amount_minor!r} must be int minor units")
        check_currency(self.currency)


@dataclass(frozen=True, slots=True)
class Transaction:
    """Balanced entries with a memo (``invoice inv-…``)."""

    memo: str
    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        totals: dict[str, int] = defaultdict(int)
        for e in self.entries:
            totals[e.currency] += e.amount_minor
        unbalanced = {c: t for c, t in totals.items() if t}
        if unbalanced:
            raise UnbalancedTransactionError(f"{self.memo}: entries do not balance: {unbalanced}")


def _tx(memo: str, currency: str, *pairs: tuple[str, int]) -> Transaction:
    return Transaction(memo, tuple(Entry(a, m, currency) for a, m in pairs if m))


def invoice_issued(memo: str, customer: str, region: str, currency: str, net_minor: int,
                   tax_minor: int, partner_shares: Mapping[str, int] | None = None
                   ) -> Transaction:
    """The customer owes net + tax; revenue and tax are recognised; partners' shares move from
    revenue to what is payable to them."""
    shares = dict(partner_shares or {})
    return _tx(memo, currency,
               (f"receivable:{customer}", net_minor + tax_minor),
               (f"revenue:{region}", -net_minor + sum(shares.values())),
               (f"tax:{region}", -tax_minor),
               *((f"payable:{p}", -s) for p, s in sorted(shares.items())))


def payment_captured(memo: str, customer: str, provider: str, currency: str,
                     amount_minor: int) -> Transaction:
    """Money in: cash up, the customer's debt down."""
    return _tx(memo, currency, (f"cash:{provider}", amount_minor),
               (f"receivable:{customer}", -amount_minor))


def refund_paid(memo: str, provider: str, region: str, currency: str, net_minor: int,
                tax_minor: int) -> Transaction:
    """Money out: revenue and tax given back, cash down."""
    return _tx(memo, currency, (f"revenue:{region}", net_minor), (f"tax:{region}", tax_minor),
               (f"cash:{provider}", -(net_minor + tax_minor)))


def credit_note(memo: str, customer: str, region: str, currency: str, net_minor: int,
                tax_minor: int) -> Transaction:
    """Unused time credited to the customer (a downgrade's proration): revenue and tax down,
    the customer's debt down."""
    return _tx(memo, currency, (f"revenue:{region}", net_minor), (f"tax:{region}", tax_minor),
               (f"receivable:{customer}", -(net_minor + tax_minor)))


def balances(transactions: Iterable[Transaction | Sequence[Entry]]
             ) -> dict[tuple[str, str], int]:
    """Each (account, currency)'s balance: debits minus credits."""
    out: dict[tuple[str, str], int] = defaultdict(int)
    for t in transactions:
        for e in (t.entries if isinstance(t, Transaction) else t):
            out[(e.account, e.currency)] += e.amount_minor
    return dict(out)
