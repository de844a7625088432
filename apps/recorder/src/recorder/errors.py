"""Errors of the recorder app.

RecorderError
└── ConfigError   the configuration cannot be used; ``problems`` holds one readable line each
"""

from collections.abc import Iterable


class RecorderError(Exception):
    """Root of the recorder app's own errors."""


class ConfigError(RecorderError, ValueError):
    """An invalid or unreadable configuration.

    ``problems`` are lines such as ``batch_size: Input should be greater than 0 (got -1)``.
    They never contain the value of a secret.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        count = len(self.problems)
        header = f"invalid recorder configuration ({count} problem{'s' if count != 1 else ''})"
        super().__init__("\n  ".join((header + ":", *self.problems)))
