"""Natural keys: what makes a row stored by two sessions the same row.

A database stores a trade once, but two databases (two sessions recording the same
symbol at once, or REST refills reaching into each other's time) may both hold it; the
tools count and export it once by its record's natural key, declared once on the record
(``bybit_records``) and taken from grid_db's tables here.
"""

from __future__ import annotations

from typing import Any

from grid_db import RecordTable, tables


def _key(table: RecordTable[Any]) -> tuple[str, ...]:
    assert table.natural_key is not None, table.name
    return table.natural_key


#: a public trade (category, symbol, trade_time_ms, trade_id)
TRADE_KEY = _key(tables.public_trades)
#: one update of one order book (its time, update id and kind)
BOOK_KEY = _key(tables.orderbook_updates)
#: a private execution
EXECUTION_KEY = _key(tables.private_executions)
#: one state of an order
ORDER_STATE_KEY = _key(tables.orders)
#: the rows of ``runs`` and of the reference tables (users, accounts, strategies)
ID_KEY: tuple[str, ...] = ("id",)
