"""Who is in the playground: one brand manager (made an admin automatically) and the influencers
the person at the browser adds. Each is a Telegram account talking to the bot in a private chat."""

from __future__ import annotations

from typing import Any

from bot.i18n import LANGUAGES, Language
from sandbox.telegram import TgUser

MANAGER = TgUser(id=1001, first_name="Maria", username="maria_brand", language_code="en")

_INFLUENCER_NAMES = ("Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Greta", "Hugo", "Ines")
_FIRST_INFLUENCER_ID = 2001


class Cast:
    def __init__(self) -> None:
        self.manager = MANAGER
        self.influencers: list[TgUser] = []

    def add_influencer(self, language: Language = "en") -> TgUser:
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        number = len(self.influencers)
        name = (
            _INFLUENCER_NAMES[number]
            if number < len(_INFLUENCER_NAMES)
            else f"Influencer {number + 1}"
        )
        person = TgUser(
            id=_FIRST_INFLUENCER_ID + number,
            first_name=name,
            username=name.lower().replace(" ", "_"),
            language_code=language,
        )
        self.influencers.append(person)
        return person

    def person(self, chat_id: int) -> TgUser | None:
        everyone = [self.manager, *self.influencers]
        return next((p for p in everyone if p.id == chat_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "manager": _person_json(self.manager),
            "influencers": [_person_json(p) for p in self.influencers],
        }


def _person_json(person: TgUser) -> dict[str, Any]:
    return {
        "id": person.id,
        "name": person.first_name,
        "username": person.username,
        "language": person.language_code,
    }
