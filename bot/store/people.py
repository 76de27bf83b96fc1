"""People: their chosen language and the last Telegram language seen."""

from __future__ import annotations

import sqlalchemy as sa

from bot.models import (
    Person,
)
from bot.store.base import Repository


class People(Repository):
    async def language_of(self, telegram_id: int) -> tuple[str | None, str | None]:
        """(chosen language, last seen Telegram language) of a person."""
        async with self.session() as s:
            person = await s.get(Person, telegram_id)
            return (person.language, person.telegram_language) if person else (None, None)

    async def remember_person(
        self, telegram_id: int, *, telegram_language: str | None
    ) -> str | None:
        """Note the person's Telegram language (needed to write to them later, e.g. a manager's
        notification); returns their chosen language. Writes only when something changed."""
        async with self.session() as s:
            person = await s.get(Person, telegram_id)
            if person is not None and person.telegram_language == telegram_language:
                return person.language
            if person is None:
                person = Person(telegram_id=telegram_id, telegram_language=telegram_language)
            else:
                person.telegram_language = telegram_language
            s.add(person)
            try:
                await s.commit()
            except sa.exc.IntegrityError:
                # The same person's other update inserted them first: nothing to add.
                await s.rollback()
            return person.language

    async def set_language(self, telegram_id: int, language: str) -> None:
        async with self.session() as s:
            person = await s.get(Person, telegram_id) or Person(telegram_id=telegram_id)
            person.language = language
            s.add(person)
            await s.commit()

