"""Identifier generators that look like the ones Bybit emits."""

from __future__ import annotations

import random
import uuid

_XID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"


def trade_uuid(rng: random.Random) -> str:
    """A UUID string like a derivatives trade id (``0cbf2330-952d-5d03-a462-4bf826c867af``).

    Real ids carry version nibble 5; the bits come from ``rng`` so seeded runs repeat.
    """
    return str(uuid.UUID(int=rng.getrandbits(128), version=5))


def order_uuid(rng: random.Random) -> str:
    """A random version-4 UUID string (order ids, exec ids)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def conn_id(rng: random.Random) -> str:
    """A connection id in the xid-like form seen on real sockets: ``da7tou12ob6fpjtusqi0-8f1rr``."""
    head = "".join(rng.choice(_XID_ALPHABET) for _ in range(20))
    tail = "".join(rng.choice(_XID_ALPHABET) for _ in range(5))
    return f"{head}-{tail}"
