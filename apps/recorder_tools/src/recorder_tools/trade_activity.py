"""Trades per time bucket and instrument, each trade counted once across databases.

Two sessions that recorded the same symbol at the same time (or whose REST refills reached into
each other's time) hold some trades twice, once per database. Buckets that more than one
database has trades in are counted again from the trades' natural keys (``keys.TRADE_KEY``),
an hour of buckets at a time, so the counts stay exact without holding a week of ids in memory.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import Engine, func, select

from recorder_tools.keys import TRADE_KEY
from recorder_tools.schema import PUBLIC_TRADES

Instrument = tuple[str, str]  # (category, symbol)
#: the columns of an instrument, fixed by every query of one instrument
_INSTRUMENT_COLUMNS = ("category", "symbol")
#: bucket start (ms) -> trades in the bucket
BucketCounts = dict[int, int]

_ID_WINDOW_MS = 3_600_000


def trade_counts(engines: Sequence[Engine], bucket_ms: int) -> dict[Instrument, BucketCounts]:
    """Trades per ``bucket_ms`` bucket (keyed by its start) per instrument, without repeats."""
    per_database = [_bucket_counts(engine, bucket_ms) for engine in engines]
    result: dict[Instrument, BucketCounts] = {}
    instruments = sorted({key for counts in per_database for key in counts})
    for instrument in instruments:
        holders: dict[int, list[int]] = defaultdict(list)  # bucket -> databases
        merged: BucketCounts = {}
        for index, counts in enumerate(per_database):
            for bucket, count in counts.get(instrument, {}).items():
                holders[bucket].append(index)
                merged[bucket] = count
        shared = sorted(b for b, dbs in holders.items() if len(dbs) > 1)
        if shared:
            sharing = sorted({i for b in shared for i in holders[b]})
            exact = _distinct_counts([engines[i] for i in sharing], instrument, shared, bucket_ms)
            merged.update(exact)
        result[instrument] = dict(sorted(merged.items()))
    return result


def _bucket_counts(engine: Engine, bucket_ms: int) -> dict[Instrument, BucketCounts]:
    bucket = (PUBLIC_TRADES.c.trade_time_ms // bucket_ms).label("bucket")
    query = select(PUBLIC_TRADES.c.category, PUBLIC_TRADES.c.symbol, bucket, func.count()).group_by(
        PUBLIC_TRADES.c.category, PUBLIC_TRADES.c.symbol, bucket
    )
    counts: dict[Instrument, BucketCounts] = defaultdict(dict)
    with engine.connect() as conn:
        for category, symbol, number, count in conn.execute(query):
            counts[(category, symbol)][int(number) * bucket_ms] = int(count)
    return counts


def _distinct_counts(
    engines: Sequence[Engine], instrument: Instrument, buckets: list[int], bucket_ms: int
) -> BucketCounts:
    """Exact trade counts of ``buckets`` from the trade keys in every database."""
    category, symbol = instrument
    # the rest of the natural key (the trade id): the query fixes the instrument
    key_columns = [PUBLIC_TRADES.c[name] for name in TRADE_KEY if name not in _INSTRUMENT_COLUMNS]
    exact: BucketCounts = {}
    for window_start, window_end in _windows(buckets, bucket_ms):
        keys: dict[int, set[object]] = defaultdict(set)
        query = select(PUBLIC_TRADES.c.trade_time_ms, *key_columns).where(
            PUBLIC_TRADES.c.category == category,
            PUBLIC_TRADES.c.symbol == symbol,
            PUBLIC_TRADES.c.trade_time_ms >= window_start,
            PUBLIC_TRADES.c.trade_time_ms < window_end,
        )
        for engine in engines:
            with engine.connect() as conn:
                for time_ms, *key in conn.execute(query):
                    keys[time_ms - time_ms % bucket_ms].add(key[0] if len(key) == 1 else tuple(key))
        exact.update((bucket, len(trade_keys)) for bucket, trade_keys in keys.items())
    return exact


def _windows(buckets: list[int], bucket_ms: int) -> list[tuple[int, int]]:
    """Runs of consecutive buckets, cut to at most an hour (or one bucket) each."""
    limit = max(_ID_WINDOW_MS, bucket_ms)
    windows: list[tuple[int, int]] = []
    for bucket in buckets:
        end = bucket + bucket_ms
        if windows and windows[-1][1] == bucket and end - windows[-1][0] <= limit:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((bucket, end))
    return windows
