"""`UNSET`: the marker for "leave this setting as it is" (re-exported by `protocol`)."""

from __future__ import annotations

from typing import Any

__all__ = ("UNSET", "Unset")


class Unset:
    """Marker for 'leave this setting as it is' in `queue_update`."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = Unset()
