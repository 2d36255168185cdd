"""Money in integer minor units: parsing, formatting, tax, proration and exact allocation.

Amounts are never floats. An amount is an ``int`` of minor units (cents) of an ISO 4217
currency; text such as ``"9.99"`` is read with ``Decimal`` and refused when it has more
decimals than the currency has. Every split (proration, tax shares, revenue shares) hands out
exactly the amount it is given: the parts always sum to the whole, no minor unit is created
or lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from drivetrain.core.errors import BadInputError

#: ISO 4217 minor-unit exponents of the currencies the platform sells in.
CURRENCY_EXPONENTS: Final[Mapping[str, int]] = {
    "EUR": 2, "USD": 2, "GBP": 2, "CHF": 2, "SEK": 2, "NOK": 2, "DKK": 2, "PLN": 2, "CZK": 2,
    "CAD": 2, "AUD": 2, "CNY": 2, "INR": 2, "BRL": 2, "MXN": 2, "JPY": 0, "KRW": 0,
}
#: Largest amount the platform handles, minor units (fits a 64-bit column with room to sum).
MAX_MINOR: Final = 10**15


def check_currency(code: object) -> str:
    """``code`` if it is a supported ISO 4217 currency.

    Raises:
        BadInputError: another value, naming the supported ones.
    """
    if not isinstance(code, str) or code not in CURRENCY_EXPONENTS:
        raise BadInputError(
            f"currency {code!r} is not supported; expected one of "
            f"{', '.join(sorted(CURRENCY_EXPONENTS))}"
        )
    return code


def check_minor(amount: object, where: str, *, allow_negative: bool = False) -> int:
    """``amount`` if it is an integer number of minor units within range.

    Raises:
        BadInputError: a float, a bool, a string, or out of range (``where`` names the field).
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise BadInputError(
            f"{where} is {amount!r}; expected an integer number of minor units (cents), "
            "never a float"
        )
    low = -MAX_MINOR if allow_negative else 0
    if not low <= amount <= MAX_MINOR:
        raise BadInputError(f"{where} is {amount}; expected {low} to {MAX_MINOR:,} minor units")
    return amount


def parse_amount(text: object, currency: str, where: str = "amount") -> int:
    """Minor units of a decimal amount given as text (``"9.99"`` EUR → 999).

    Raises:
        BadInputError: not a decimal string, more decimals than the currency has, negative,
            or too large.
    """
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    if not isinstance(text, str) or len(text) > 32:
        raise BadInputError(f"{where} {text!r}: expected a decimal string such as '9.99'")
    try:
        value = Decimal(text)
    except InvalidOperation as e:
        raise BadInputError(f"{where} {text!r} is not a decimal number") from e
    if not value.is_finite():
        raise BadInputError(f"{where} {text!r} is not a finite number")
    minor = value.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise BadInputError(
            f"{where} {text!r} has more than {exponent} decimals, which {currency} does not have"
        )
    return check_minor(int(minor), where)


def format_amount(minor: int, currency: str) -> str:
    """``999, "EUR"`` → ``"9.99"`` (exact; no float on the way)."""
    exponent = CURRENCY_EXPONENTS[check_currency(currency)]
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


def parse_rate(text: object, where: str = "rate") -> Decimal:
    """A tax or share rate given as a decimal string between 0 and 1 (``"0.19"``).

    Raises:
        BadInputError: not a decimal string in [0, 1] with at most 6 decimals.
    """
    if not isinstance(text, str) or len(text) > 16:
        raise BadInputError(f"{where} {text!r}: expected a decimal string such as '0.19'")
    try:
        rate = Decimal(text)
    except InvalidOperation as e:
        raise BadInputError(f"{where} {text!r} is not a decimal number") from e
    if not rate.is_finite() or not Decimal(0) <= rate <= Decimal(1):
        raise BadInputError(f"{where} {text!r}: expected a fraction between 0 and 1")
    if rate != rate.quantize(Decimal("0.000001")):
        raise BadInputError(f"{where} {text!r}: at most 6 decimals")
    return rate


def tax_on(net_minor: int, rate: Decimal) -> int:
    """The tax on a net amount, minor units, rounded half to even (banker's rounding)."""
    return int((Decimal(net_minor) * rate).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def prorate(amount_minor: int, used_s: int, period_s: int) -> tuple[int, int]:
    """Split a period's price into the part used and the part left, by time.

    ``used + left == amount`` always; ``used`` is rounded down (the customer is never charged
    for time not used), so ``left`` — the credit — gets the odd minor unit.

    Raises:
        ValueError: a period that is not positive, or ``used_s`` outside it.
    """
    if period_s <= 0 or not 0 <= used_s <= period_s:
        raise ValueError(f"used {used_s} s of a {period_s} s period")
    used = amount_minor * used_s // period_s
    return used, amount_minor - used


def allocate(amount_minor: int, weights: Sequence[int]) -> list[int]:
    """Split ``amount_minor`` in proportion to non-negative integer ``weights`` by the largest
    remainder method: the parts sum exactly to the amount.

    Raises:
        ValueError: no weights, a negative one, or all zero.
    """
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError(f"weights {list(weights)} must be non-negative and not all zero")
    total = sum(weights)
    base = [amount_minor * w // total for w in weights]
    remainders = [amount_minor * w % total for w in weights]
    short = amount_minor - sum(base)
    for i in sorted(range(len(weights)), key=lambda i: (-remainders[i], i))[:short]:
        base[i] += 1
    return base


def share_of(amount_minor: int, rate: Decimal) -> tuple[int, int]:
    """Split an amount by a rate (a partner's revenue share): ``(share, rest)``, summing to
    the amount; the share is rounded down."""
    share = int(Decimal(amount_minor) * rate)  # int() truncates toward zero
    return share, amount_minor - share
