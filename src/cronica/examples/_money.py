"""Amounts of money: decimals, never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from cronica.errors import InvalidInputError, InvariantError


class InvalidAmountError(InvariantError):
    """An amount that is not a positive, finite decimal with at most two decimal places."""


def amount(value: Decimal | int | str) -> Decimal:
    """``value`` as a positive ``Decimal``; floats are refused (0.1 is not a tenth in binary)."""
    if isinstance(value, bool | float):
        raise InvalidInputError(f"amounts are decimals, not {type(value).__name__}: {value!r}")
    if not isinstance(value, Decimal | int | str):
        raise InvalidInputError(f"an amount must be a decimal, not {type(value).__name__}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise InvalidAmountError(f"not an amount: {value!r}") from None
    if not result.is_finite():
        raise InvalidAmountError(f"not an amount: {value!r}")
    if result <= 0:
        raise InvalidAmountError(f"an amount must be positive, not {result}")
    if result.as_tuple().exponent < -2:  # type: ignore[operator]
        raise InvalidAmountError(f"an amount has at most two decimal places, not {result}")
    return result
