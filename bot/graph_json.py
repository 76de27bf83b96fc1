"""Readers for Graph's JSON, which the product does not trust: each returns the value in the shape
asked for, or "unknown" (None, or an empty list) for anything else. Shared by the login verdict
(`bot.verdict`) and the health verdict (`bot.health`); pure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    return []


def as_text(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value
    return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def as_id(value: Any) -> str | None:
    """Graph ids are strings, but app ids and error codes also arrive as JSON numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    text = as_text(value)
    return text.strip() if text is not None else None


def as_timestamp(value: Any) -> datetime | None:
    """Unix seconds to aware UTC; 0 is Facebook's "never", garbage counts as unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
