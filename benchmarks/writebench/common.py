"""What the write-model benchmark's parts share: the sizes (``FULL``, ``QUICK``), the amounts,
and the amount check of the deposits that are not cronica's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final


@dataclass(frozen=True, slots=True)
class WriteModelSizes:
    """The two workloads' parameters."""

    accounts: int
    """Accounts the commands go to, round robin."""
    initial_events: int
    """Events of each account before the commands start (``AccountCreated`` + deposits)."""
    commands: int
    """Commands each contender runs in all (cut into slices, taking turns): the same number
    for all, so every contender's accounts grow by the same number of events."""
    load_events: tuple[int, ...]
    """Sizes of the aggregates loaded."""
    load_seconds: float
    """Time each load contender loads, in all (at least ``MIN_LOADS`` loads)."""
    append_batch: int
    """Events per ``store.append`` (or per ``app.save``) when writing the loaded aggregates."""
    snapshot_lag: int
    """Events after the snapshot in the 'snapshot behind' variant (snapshot_every=100: 99)."""


FULL: Final = WriteModelSizes(
    accounts=100,
    initial_events=10,
    commands=2_000,
    load_events=(100, 10_000, 100_000),
    load_seconds=1.0,
    append_batch=5_000,
    snapshot_lag=99,
)
QUICK: Final = WriteModelSizes(
    accounts=20,
    initial_events=10,
    commands=200,
    load_events=(100, 1_000, 10_000),
    load_seconds=0.2,
    append_batch=5_000,
    snapshot_lag=99,
)

COMMAND_AMOUNT: Final = "10.00"
"""What every command deposits: ``account.deposit("10.00")``."""
INITIAL_AMOUNT: Final = Decimal("10.00")
"""Each deposit of the accounts' initial events."""
LOAD_AMOUNT: Final = Decimal("1.00")
"""Each deposit of the loaded aggregates."""
OWNER: Final = "Juan Pérez"


MAX_AMOUNT: Final = Decimal("1e15")
_CENT: Final = Decimal("0.01")
_PLAIN_NUMBER: Final = re.compile(r"[+-]?\d+(\.\d+)?")


def amount(value: Decimal | int | str) -> Decimal:
    """The checks of cronica's example (``cronica.examples._money.amount``) for the other
    implementations, so all of them decide alike: a plain, positive number below 10**15 with at
    most two decimal places, returned with two."""
    if isinstance(value, bool | float) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"amounts are decimals, not {type(value).__name__}")
    if isinstance(value, str) and not _PLAIN_NUMBER.fullmatch(value):
        raise ValueError(f"not an amount: {value!r}")
    result = Decimal(value)
    if not result.is_finite() or result <= 0 or result >= MAX_AMOUNT:
        raise ValueError(f"not an amount: {value!r}")
    if result != result.quantize(_CENT):
        raise ValueError(f"an amount has at most two decimal places, not {result}")
    return result.quantize(_CENT)
