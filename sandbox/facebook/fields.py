"""Graph's request syntax: the ``fields`` parameter, the fields each node type has, and paging
cursors."""

from __future__ import annotations

import base64
import re
from email.utils import formatdate
from typing import Any

from .errors import GraphError

PAGE_FIELDS = frozenset(
    {
        "id",
        "name",
        "is_published",
        "tasks",
        "access_token",
        "category",
        "instagram_business_account",
        "connected_instagram_account",
    }
)
IG_FIELDS = frozenset(
    {
        "id",
        "ig_id",
        "username",
        "name",
        "biography",
        "followers_count",
        "follows_count",
        "media_count",
        "profile_picture_url",
        "website",
    }
)
USER_FIELDS = frozenset({"id", "name", "first_name", "last_name", "short_name"})


def parse_fields(spec: str) -> list[tuple[str, list[Any] | None]]:
    """Parse Graph's ``fields`` syntax: ``id,name,instagram_business_account{id,username}``.

    Modifiers such as ``.limit(5)`` are accepted and ignored."""
    result, rest = _parse_field_list(spec.replace(" ", ""), 0)
    if rest != len(spec.replace(" ", "")):
        raise GraphError(2500, f"Syntax error at character {rest} in fields: {spec}")
    return result


def _parse_field_list(spec: str, pos: int) -> tuple[list[tuple[str, list[Any] | None]], int]:
    fields: list[tuple[str, list[Any] | None]] = []
    while pos < len(spec) and spec[pos] != "}":
        match = re.compile(r"[A-Za-z0-9_]+").match(spec, pos)
        if match is None:
            raise GraphError(2500, f"Syntax error at character {pos} in fields: {spec}")
        name, pos = match.group(), match.end()
        sub: list[Any] | None = None
        while pos < len(spec) and spec[pos] in "{.":
            if spec[pos] == "{":
                sub, pos = _parse_field_list(spec, pos + 1)
                if pos >= len(spec) or spec[pos] != "}":
                    raise GraphError(2500, f"Syntax error: missing '}}' in fields: {spec}")
                pos += 1
            else:
                modifier = re.compile(r"\.[a-z_]+\([^)]*\)").match(spec, pos)
                if modifier is None:
                    raise GraphError(2500, f"Syntax error at character {pos} in fields: {spec}")
                pos = modifier.end()
        fields.append((name, sub))
        if pos < len(spec) and spec[pos] == ",":
            pos += 1
    return fields, pos


def cursor_for(index: int) -> str:
    return base64.urlsafe_b64encode(f"cursor:{index}".encode()).decode()


def cursor_index(cursor: str) -> int:
    try:
        return int(base64.urlsafe_b64decode(cursor.encode()).decode().removeprefix("cursor:"))
    except (ValueError, UnicodeDecodeError):
        raise GraphError(100, "(#100) Invalid cursor") from None


def facebook_time(timestamp: float) -> str:
    return formatdate(timestamp, usegmt=True)
