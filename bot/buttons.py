"""Inline-button data: one codec for every button the bot sends.

A kind of button is a frozen dataclass subclassing `ButtonData`, declared next to the handlers
that answer it (here when several modules make it), with a short `prefix` of its own. On the wire
its data is the prefix and the fields joined with ":", e.g. `c1:y:17:page_public`, within
Telegram's 64 bytes: `pack` refuses more. `parse` is the only way back and returns None for
anything `pack` would not have made: another prefix, a wrong number of fields, a number that is
not plain ASCII digits within the row id range, an unknown enum value, a field the kind's own
`__post_init__` refuses (it raises ValueError). So stale or forged data is answered, never a
traceback. `pattern` routes a kind's presses to its `CallbackQueryHandler`; it matches the prefix
only, so malformed data with that prefix still reaches the handler that knows what to say.

Field types: `int` (0 … MAX_ROW_ID, plain decimal), a `StrEnum`, `str` (without ":").

The layouts of the buttons made before this codec (`c1`, `p1`, `l1`, `ia`) were already a prefix
and ":"-joined fields, so those buttons, still in people's chats for weeks, parse unchanged. Only
the language button moved (see `bot.handlers.influencer.ChooseLanguage`). A change of a kind's
fields needs a new prefix, so that older buttons read as stale instead of wrong.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Self, get_type_hints

from telegram.constants import InlineKeyboardButtonLimit

from bot.models import MAX_ROW_ID, Step

SEPARATOR = ":"
MAX_BYTES: int = InlineKeyboardButtonLimit.MAX_CALLBACK_DATA
_PREFIX = re.compile(r"[a-z][a-z0-9]{0,7}")
_NUMBER = re.compile(r"0|[1-9][0-9]{0,9}")  # canonical: what str(int) writes, nothing else

_kinds: dict[str, type[ButtonData]] = {}


@dataclass(frozen=True)
class ButtonData:
    """The base of every kind of button data. Subclasses set `prefix` and declare fields."""

    prefix: ClassVar[str]

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        prefix = cls.__dict__.get("prefix")
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise TypeError(f"{cls.__qualname__}: a prefix of 1-8 lowercase letters and digits")
        other = _kinds.get(prefix)
        if other is not None and (other.__module__, other.__qualname__) != (
            cls.__module__,
            cls.__qualname__,
        ):
            raise TypeError(f"{cls.__qualname__}: prefix {prefix!r} is {other.__qualname__}'s")
        _kinds[prefix] = cls

    def pack(self) -> str:
        """The callback data; ValueError if it would not be read back as this, or is too long."""
        parts = [self.prefix]
        for field, (kind, _) in zip(dataclasses.fields(self), _codec(type(self)), strict=True):
            parts.append(_encode(kind, getattr(self, field.name), field.name))
        data = SEPARATOR.join(parts)
        size = len(data.encode())
        if size > MAX_BYTES:
            raise ValueError(f"{type(self).__name__}: {size} bytes, Telegram takes {MAX_BYTES}")
        return data

    @classmethod
    def parse(cls, data: str | None) -> Self | None:
        """The button pressed, or None for anything else (stale, forged, another kind)."""
        if not isinstance(data, str):
            return None
        try:
            if len(data.encode()) > MAX_BYTES:
                return None
        except UnicodeEncodeError:  # lone surrogates: no button of ours
            return None
        prefix, *texts = data.split(SEPARATOR)
        codec = _codec(cls)
        if prefix != cls.prefix or len(texts) != len(codec):
            return None
        try:
            return cls(*(decode(text) for (_, decode), text in zip(codec, texts, strict=True)))
        except ValueError:
            return None

    @classmethod
    def pattern(cls) -> re.Pattern[str]:
        """For `CallbackQueryHandler(pattern=...)`: every press whose data has this prefix."""
        _codec(cls)  # a field of a type the codec cannot carry fails here, at registration
        return re.compile(rf"^{re.escape(cls.prefix)}(?:{SEPARATOR}|$)")


def _number(text: str) -> int:
    if not _NUMBER.fullmatch(text) or int(text) > MAX_ROW_ID:
        raise ValueError("not a number of ours")
    return int(text)


def _text(text: str) -> str:
    return text


Codec = tuple[tuple[type, Callable[[str], object]], ...]
_codecs: dict[type[ButtonData], Codec] = {}


def _codec(kind: type[ButtonData]) -> Codec:
    """Each field's type and its decoder, in field order (worked out once per kind)."""
    known = _codecs.get(kind)
    if known is not None:
        return known
    if kind is ButtonData or not dataclasses.is_dataclass(kind):
        raise TypeError(f"{kind.__qualname__}: declare it a @dataclass(frozen=True)")
    hints = get_type_hints(kind)
    codec: list[tuple[type, Callable[[str], object]]] = []
    for field in dataclasses.fields(kind):
        hint = hints[field.name]
        if hint is int:
            codec.append((int, _number))
        elif hint is str:
            codec.append((str, _text))
        elif isinstance(hint, type) and issubclass(hint, StrEnum):
            codec.append((hint, hint))
        else:
            raise TypeError(f"{kind.__qualname__}.{field.name}: int, str or a StrEnum")
    _codecs[kind] = tuple(codec)
    return _codecs[kind]


def _encode(kind: type, value: object, name: str) -> str:
    if kind is int:
        if type(value) is not int or not 0 <= value <= MAX_ROW_ID:
            raise ValueError(f"{name}: {value!r} is not a number from 0 to {MAX_ROW_ID}")
        return str(value)
    if not isinstance(value, kind) or not isinstance(value, str):
        raise ValueError(f"{name}: {value!r} is not a {kind.__name__}")
    if SEPARATOR in value:
        raise ValueError(f"{name}: {value!r} contains {SEPARATOR!r}")
    return str(value.value) if isinstance(value, StrEnum) else value


def positive_id(name: str, value: int) -> None:
    """For a kind's `__post_init__`: ValueError unless `value` can be a row's id."""
    if value <= 0:
        raise ValueError(f"{name}: a row id is positive")


# --- the guided flow's buttons (made by bot.screens and bot.connect, answered by
# bot.handlers.influencer) --------------------------------------------------------------------


class Action(StrEnum):
    YES = "y"
    NO = "n"
    HOW = "h"
    DONE = "d"
    RETRY = "r"  # a fresh login attempt after a failed one
    NEW_LINK = "l"  # a fresh login link (the old one expired)
    RESUME = "c"  # continue after /cancel
    # The ways in (issue 13): "I don't know" at the path question; Instagram Login instead of a
    # failed Facebook login; the Facebook path instead of Instagram Login's check.
    UNSURE = "u"
    SWITCH = "i"
    FACEBOOK = "f"


@dataclass(frozen=True)
class Press(ButtonData):
    """A step's button: `c1:<action>:<invitation id>:<step>`. The step is the one the button was
    made for; a mismatch with the invitation's step means the button is stale."""

    prefix: ClassVar[str] = "c1"
    action: Action
    invitation_id: int
    step: Step

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)


# --- a kept connection's buttons (issue 11) ---------------------------------------------------


@dataclass(frozen=True)
class Renew(ButtonData):
    """The influencer's "Renew access" / "Reconnect" under a renewal request or a breakage
    notice: `rn:<invitation id>`. Answered by `bot.handlers.influencer` with a fresh login for
    the same invitation (Facebook's dialog with auth_type=reauthorize)."""

    prefix: ClassVar[str] = "rn"
    invitation_id: int

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)


@dataclass(frozen=True)
class RemindHealth(ButtonData):
    """A manager's "Remind" beside a connection that needs attention (/health, /show):
    `hr:<invitation id>`. Sends the influencer the renewal request or the breakage notice again
    (`bot.handlers.managers`)."""

    prefix: ClassVar[str] = "hr"
    invitation_id: int

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)


@dataclass(frozen=True)
class RefreshProfile(ButtonData):
    """"Refresh" under a profile: `pf:<invitation id>`. Reads the figures again for whoever may
    see them (the brand's managers, the influencer)."""

    prefix: ClassVar[str] = "pf"
    invitation_id: int

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)


@dataclass(frozen=True)
class ShowProfile(ButtonData):
    """"Profile" under /show of a connected invitation: `pv:<invitation id>`."""

    prefix: ClassVar[str] = "pv"
    invitation_id: int

    def __post_init__(self) -> None:
        positive_id("invitation_id", self.invitation_id)
