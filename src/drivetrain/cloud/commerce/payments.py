"""Payment providers behind one interface, and the built-in test provider.

A provider charges a customer's stored payment method and refunds a payment. Every call
carries an idempotency key: asking again with the same key returns the same outcome and the
same reference, never a second charge — so a retried request, or a replayed provider event,
moves money at most once (the service also stores each event id once).

``TestPaymentProvider`` decides from the payment method, as card processors' test modes do:
``test_card_ok`` is charged, ``test_card_declined`` is declined (``card_declined``) and
``test_card_insufficient`` too (``insufficient_funds``). Nothing leaves the process.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import Final, Protocol

from drivetrain.core.errors import BadInputError
from drivetrain.core.settings import Settings

TEST_METHODS: Final = {"test_card_ok": None, "test_card_declined": "card_declined",
                       "test_card_insufficient": "insufficient_funds"}


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """What a provider answered: ``reference`` names the payment (and is the event id)."""

    succeeded: bool
    reference: str
    reason: str | None = None


class PaymentProvider(Protocol):
    """Charges and refunds through a payment service."""

    name: str

    def check_method(self, payment_method: str) -> str:
        """``payment_method`` if this provider can charge it.

        Raises:
            BadInputError: it cannot, saying what it accepts.
        """
        ...

    def charge(self, account_id: str, payment_method: str, amount_minor: int, currency: str,
               idempotency_key: str) -> PaymentOutcome:
        """Charge ``amount_minor`` of ``currency`` once per ``idempotency_key``."""
        ...

    def refund(self, reference: str, amount_minor: int, currency: str,
               idempotency_key: str) -> PaymentOutcome:
        """Refund up to the amount of the payment ``reference``, once per key."""
        ...


class TestPaymentProvider:
    """The built-in provider for tests and demos (see the module docstring)."""

    __test__ = False  # not a pytest test class
    name = "test"

    def __init__(self) -> None:
        self._outcomes: dict[str, PaymentOutcome] = {}
        self._lock = threading.Lock()
        #: Charges and refunds actually made (not the idempotent repeats).
        self.charges = 0
        self.refunds = 0

    def check_method(self, payment_method: str) -> str:
        if payment_method not in TEST_METHODS:
            raise BadInputError(
                f"payment method {payment_method!r} is not one the test provider knows; "
                f"expected one of {sorted(TEST_METHODS)}"
            )
        return payment_method

    @staticmethod
    def _reference(prefix: str, key: str) -> str:
        return f"{prefix}_{hashlib.blake2b(key.encode(), digest_size=12).hexdigest()}"

    def charge(self, account_id: str, payment_method: str, amount_minor: int, currency: str,
               idempotency_key: str) -> PaymentOutcome:
        with self._lock:
            known = self._outcomes.get(idempotency_key)
            if known is not None:
                return known
            decline = TEST_METHODS.get(payment_method, "unknown_payment_method")
            outcome = PaymentOutcome(decline is None, self._reference("ch", idempotency_key),
                                     decline)
            self.charges += decline is None
            self._outcomes[idempotency_key] = outcome
            return outcome

    def refund(self, reference: str, amount_minor: int, currency: str,
               idempotency_key: str) -> PaymentOutcome:
        with self._lock:
            known = self._outcomes.get(idempotency_key)
            if known is not None:
                return known
            outcome = PaymentOutcome(True, self._reference("re", idempotency_key))
            self.refunds += 1
            self._outcomes[idempotency_key] = outcome
            return outcome


def payment_provider(settings: Settings) -> PaymentProvider:
    """The provider ``settings.payment_provider`` names. Each test provider is stateless
    across instances where it matters: its references derive from the idempotency key, and
    the service stores each event id once."""
    if settings.payment_provider == "test":
        return TestPaymentProvider()
    raise ValueError(f"payment provider {settings.payment_provider!r} is not known")
