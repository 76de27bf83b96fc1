"""Inline-button payloads: one small typed structure, packed to a string within Telegram's
64-byte limit and parsed in exactly one place. Anything that does not parse is treated as stale."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from telegram.constants import InlineKeyboardButtonLimit

_PREFIX = "c1"  # bump when the layout changes, so old buttons read as stale instead of wrong


class Action(StrEnum):
    YES = "y"
    NO = "n"
    HOW = "h"
    DONE = "d"
    RETRY = "r"  # a fresh login attempt after a failed one
    NEW_LINK = "l"  # a fresh login link (the old one expired)
    RESUME = "c"  # continue after /cancel
    LANGUAGE = "g"


@dataclass(frozen=True)
class Press:
    action: Action
    invitation_id: int = 0
    step: str = ""  # the step the button was made for; a mismatch means the button is stale

    def pack(self) -> str:
        data = f"{_PREFIX}:{self.action}:{self.invitation_id}:{self.step}"
        if len(data.encode()) > InlineKeyboardButtonLimit.MAX_CALLBACK_DATA:
            raise ValueError("callback data too long")
        return data

    @classmethod
    def parse(cls, data: str | None) -> Press | None:
        if not data:
            return None
        parts = data.split(":")
        if len(parts) != 4 or parts[0] != _PREFIX:
            return None
        try:
            return cls(Action(parts[1]), int(parts[2]), parts[3])
        except ValueError:
            return None
