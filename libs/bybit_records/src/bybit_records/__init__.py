"""The records the recorder stores: one frozen msgspec struct per table.

A record's fields are its table's columns; ``natural_key`` is its de-duplication
rule; ``Wire`` names where each field sits in Bybit's frames. ``bybit_adapter``
decodes frames into these records, ``grid_db`` builds its tables from them, and
``event_saver`` moves them from one to the other. Nothing here does I/O.
"""

from bybit_records.account import Execution, Order, Position, PrivateRecord, Wallet
from bybit_records.book import Book, BookLevel, BookLevels, BookUpdate
from bybit_records.enums import (
    BookKind,
    Category,
    DataSource,
    FillStatus,
    FrameType,
    OutageCause,
    Topic,
)
from bybit_records.ledger import MAX_REJECTED_PAYLOAD, MAX_REJECTED_REASON, Gap, RejectedFrame
from bybit_records.market import TICKER_WIRE_KEYS, Ticker, Trade
from bybit_records.record import (
    DECIMAL,
    DECIMAL_PATTERN,
    INT64,
    NONEMPTY,
    FieldInfo,
    Record,
    Wire,
    record_fields,
)

__all__ = [
    "DECIMAL",
    "DECIMAL_PATTERN",
    "INT64",
    "MAX_REJECTED_PAYLOAD",
    "MAX_REJECTED_REASON",
    "NONEMPTY",
    "TICKER_WIRE_KEYS",
    "Book",
    "BookKind",
    "BookLevel",
    "BookLevels",
    "BookUpdate",
    "Category",
    "DataSource",
    "Execution",
    "FieldInfo",
    "FillStatus",
    "FrameType",
    "Gap",
    "Order",
    "OutageCause",
    "Position",
    "PrivateRecord",
    "Record",
    "RejectedFrame",
    "Ticker",
    "Topic",
    "Trade",
    "Wallet",
    "Wire",
    "record_fields",
]
