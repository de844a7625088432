"""The one error of the completeness check."""

from __future__ import annotations


class CompletenessError(Exception):
    """The database or the ground truth cannot be read; the message is one line."""
