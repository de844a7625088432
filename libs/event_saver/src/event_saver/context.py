"""Who and what a private recording belongs to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccountContext:
    account_id: str
    run_id: str
    # Categories whose executions, orders and positions are reconciled over REST.
    categories: tuple[str, ...] = ("linear",)
