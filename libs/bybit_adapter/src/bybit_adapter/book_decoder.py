"""``orderbook.{depth}.{symbol}`` frames into ``BookUpdate`` records.

Pure and synchronous, like the other decoders: no I/O, no clock, no book state (the
sequence checks are ``BookValidator``'s). A frame that cannot become a record raises
``FrameRejected`` with a one-line reason.

Where Bybit puts each value (checked against the captured frames of every category):

* the topic: the depth and the symbol (``orderbook.50.BTCUSDT``);
* the envelope: ``type`` (``snapshot``/``delta``), ``ts`` (required), ``cts`` (the
  matching engine's time; absent before 2023-12, so optional), and on option books an
  ``id`` (ignored);
* ``data``: ``s`` (must be the topic's symbol), ``u`` (required, >= 0: an empty option
  book's snapshot has ``u`` 0), ``seq`` (absent on option books), ``b`` and ``a``: lists
  of ``[price, size]`` pairs of decimal strings (``DECIMAL_PATTERN``), possibly empty.

The frame is checked and converted by msgspec in one call, against a struct derived
from ``BookUpdate``'s ``Wire`` names (``ws_struct``), so the record is the one
declaration of the wire shape; then every price and size of the frame is checked in one
regex match (joined by NUL, as the trade decoder does: a pattern per string costs ten
times as much). A frame is decoded as labelled: a ``u`` = 1 frame labelled
``delta`` stays a delta (``BookValidator`` then reports the broken sequence).
"""

from __future__ import annotations

import re
from itertools import chain
from typing import Annotated, Any, Literal

import msgspec

from bybit_adapter.errors import FrameRejected
from bybit_adapter.wire import ws_struct
from bybit_records import DECIMAL_PATTERN, INT64, BookKind, BookLevels, BookUpdate, Category

#: The topic family of order books.
BOOK_PREFIX = "orderbook."
#: ``orderbook.{depth}.{symbol}``: a depth of ASCII digits (``orderbook.rpi.*`` and
#: ``orderbook.full.*`` are other streams), a symbol without whitespace.
_TOPIC = re.compile(r"orderbook\.([1-9][0-9]{0,5})\.(\S+)\Z")

Int64 = Annotated[int, INT64]
_BookData: Any = ws_struct(BookUpdate)
_BookFrame: Any = msgspec.defstruct(
    "BookFrame",
    [
        ("topic", str),
        ("type", Literal["snapshot", "delta"]),
        ("ts", Int64),
        ("data", _BookData),
        ("cts", Int64 | None, None),
    ],
    kw_only=True,
    gc=False,
)
_decode_frame = msgspec.json.Decoder(_BookFrame).decode
#: ``DECIMAL_PATTERN`` unanchored, its group not capturing (a third faster)
_DECIMAL = DECIMAL_PATTERN.removeprefix("^").removesuffix(r"\Z").replace("(", "(?:")
#: Decimal strings joined by NUL: each is a plain decimal exactly when the whole string
#: matches and holds one NUL fewer than there are strings.
_DECIMALS_JOINED = re.compile(f"{_DECIMAL}(?:\x00{_DECIMAL})*")
_KINDS = {"snapshot": BookKind.SNAPSHOT, "delta": BookKind.DELTA}


def book_topic(topic: str) -> tuple[int, str] | None:
    """(depth, symbol) of an ``orderbook.{depth}.{symbol}`` topic, else None."""
    match = _TOPIC.match(topic)
    return None if match is None else (int(match.group(1)), match.group(2))


class BookDecoder:
    """``orderbook.{depth}.{symbol}`` frames of one category.

    ``frame(message, received_ns)`` takes a frame already decoded to a dict (as
    ``PublicStream`` routes them); ``decode(raw, received_ns)`` takes its text or bytes
    and decodes it straight into the wire struct (no dict). Both check the same things
    and make the same record of a frame.
    """

    def __init__(self, category: Category) -> None:
        self.category = category

    def frame(self, message: dict[str, Any], received_ns: int) -> BookUpdate:
        """The update of a decoded frame; raises ``FrameRejected`` with the reason."""
        topic = message.get("topic")
        if not isinstance(topic, str) or not topic.startswith(BOOK_PREFIX):
            raise FrameRejected(f"not an orderbook.{{depth}}.{{symbol}} topic: {topic!r:.80}")
        try:
            frame = msgspec.convert(message, _BookFrame)
        except (msgspec.ValidationError, UnicodeError) as exc:
            # UnicodeEncodeError: msgspec meets a lone surrogate in a str it must match.
            raise FrameRejected(f"{topic:.80}: {_reason(exc)}") from None
        return self._record(frame, received_ns)

    def decode(self, raw: str | bytes, received_ns: int) -> BookUpdate:
        """The update of a frame's text; raises ``FrameRejected`` with the reason."""
        try:
            frame = _decode_frame(raw)
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:
            raise FrameRejected(f"orderbook: {_reason(exc)}") from None
        return self._record(frame, received_ns)

    def _record(self, frame: Any, received_ns: int) -> BookUpdate:
        topic: str = frame.topic
        parsed = book_topic(topic)
        if parsed is None:
            raise FrameRejected(f"not an orderbook.{{depth}}.{{symbol}} topic: {topic!r:.80}")
        depth, symbol = parsed
        data = frame.data
        if data.s != symbol:
            raise FrameRejected(f"{topic:.80}: data.s {data.s!r:.40} is not the topic's symbol")
        if data.u < 0:
            raise FrameRejected(f"{topic:.80}: negative update id u={data.u}")
        bids, asks = data.b, data.a
        if bids or asks:
            count = 2 * (len(bids) + len(asks))
            joined = "\x00".join(chain.from_iterable(chain(bids, asks)))
            if joined.count("\x00") != count - 1 or not _DECIMALS_JOINED.fullmatch(joined):
                raise FrameRejected(f"{topic:.80}: {_bad_level(bids, asks)}")
        return BookUpdate(
            category=self.category,
            symbol=symbol,
            depth=depth,
            kind=_KINDS[frame.type],
            update_id=data.u,
            seq=data.seq,
            match_ts_ms=frame.cts,
            exchange_ts_ms=frame.ts,
            received_ts_ms=received_ns // 1_000_000,
            bids=bids,
            asks=asks,
        )


_decimal = re.compile(_DECIMAL).fullmatch


def _bad_level(bids: BookLevels, asks: BookLevels) -> str:
    """Which level of a frame holds a price or size that is not a plain decimal."""
    for side, levels in (("b", bids), ("a", asks)):
        for n, (price, size) in enumerate(levels):
            if _decimal(price) is None:
                return f"{side}[{n}] price is not a decimal: {price!r:.40}"
            if _decimal(size) is None:
                return f"{side}[{n}] size is not a decimal: {size!r:.40}"
    return "a price or size is not a decimal"  # not reached: the joined check agrees


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeError):
        return "a string is not valid Unicode"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)
