"""Amounts of money: decimals, never floats, with two decimal places."""

from __future__ import annotations

import re
from decimal import Decimal

from cronica.errors import InvalidInputError, InvariantError

MAX_AMOUNT = Decimal("1e15")
"""Amounts stay below a thousand trillion, so sums of them stay exact in 28 digits."""

_CENT = Decimal("0.01")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class InvalidAmountError(InvariantError):
    """An amount that is not a positive decimal below 10**15 with at most two decimal places."""


def amount(value: Decimal | int | str) -> Decimal:
    """``value`` as a positive ``Decimal`` with two places (``"50"`` is ``Decimal("50.00")``).

    Floats are refused (0.1 is not a tenth in binary); strings are plain numbers (no exponent,
    no underscores or spaces).
    """
    if isinstance(value, bool | float):
        raise InvalidInputError(f"amounts are decimals, not {type(value).__name__}: {value!r}")
    if not isinstance(value, Decimal | int | str):
        raise InvalidInputError(f"an amount must be a decimal, not {type(value).__name__}")
    if isinstance(value, str) and not _PLAIN_NUMBER.fullmatch(value):
        raise InvalidAmountError(f"not an amount: {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise InvalidAmountError(f"not an amount: {value!r}")
    if result <= 0:
        raise InvalidAmountError(f"an amount must be positive, not {result}")
    if result >= MAX_AMOUNT:
        raise InvalidAmountError(f"an amount must be below {MAX_AMOUNT:,.0f}, not {result}")
    if result != result.quantize(_CENT):
        raise InvalidAmountError(f"an amount has at most two decimal places, not {result}")
    return result.quantize(_CENT)
