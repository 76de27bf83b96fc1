"""User-facing text. Every string lives in `bot/locales/<lang>.toml`; every key exists in every
language (a test checks it, placeholders included). Messages are Telegram HTML: values filled into
a text are escaped here, so a handle or a Page name can never break the markup. A text that
depends on a number has plural forms (`key.one`, `key.other`), chosen by the value `count`."""

from __future__ import annotations

import html
import string
import tomllib
from collections.abc import Mapping
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal

Language = Literal["de", "en"]
LANGUAGES: tuple[Language, ...] = ("en", "de")
_LOCALES = Path(__file__).parent / "locales"


def _flatten(prefix: str, table: Mapping[str, object], out: dict[str, str]) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(f"{name}.", value, out)
        else:
            out[name] = str(value)


@cache
def catalog(language: Language) -> Mapping[str, str]:
    with open(_LOCALES / f"{language}.toml", "rb") as fh:
        data = tomllib.load(fh)
    flat: dict[str, str] = {}
    _flatten("", data, flat)
    return flat


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


# Plural forms, as CLDR names them. German and English both have two: "one" for exactly 1,
# "other" for every other number (0 included). A language with more would add its rule here.
PLURAL_ONE = "one"
PLURAL_OTHER = "other"


def plural_form(language: Language, count: int) -> str:
    return PLURAL_ONE if count == 1 else PLURAL_OTHER


class Html(str):
    """A value that is already Telegram HTML (rendered from the catalog): inserted unescaped."""


def _safe(value: object) -> str:
    return value if isinstance(value, Html) else html.escape(str(value), quote=False)


class Texts:
    """The catalog of one language, bound: `texts("welcome.title", name=...)`."""

    def __init__(self, language: Language) -> None:
        self.language: Language = language
        self._catalog = catalog(language)

    def __call__(self, key: str, **values: object) -> Html:
        template = self._template(key, values)
        return Html(template.format(**{k: _safe(v) for k, v in values.items()}))

    def has(self, key: str) -> bool:
        return key in self._catalog or f"{key}.{PLURAL_OTHER}" in self._catalog

    def plain(self, key: str, **values: object) -> str:
        """For places without HTML (button labels, web page titles escape on their own)."""
        return self._template(key, values).format(**{k: str(v) for k, v in values.items()})

    def _template(self, key: str, values: Mapping[str, object]) -> str:
        """The text of `key`; for a text with plural forms (`key.one`, `key.other`), the form
        that fits the value `count`."""
        if key in self._catalog:
            return self._catalog[key]
        count = values.get("count")
        if not isinstance(count, int):
            raise KeyError(f"{key} has plural forms: pass count=")
        return self._catalog[f"{key}.{plural_form(self.language, count)}"]


def pick_language(*, chosen: str | None, telegram_code: str | None, default: Language) -> Language:
    """An explicit choice wins; else `de*` from Telegram means German; else the default."""
    if chosen in LANGUAGES:
        return chosen
    if telegram_code and telegram_code.lower().startswith("de"):
        return "de"
    if telegram_code and telegram_code.lower().startswith("en"):
        return "en"
    return default


def from_accept_language(header: str | None, default: Language) -> Language:
    """For web pages seen by someone we cannot identify (e.g. a forged state)."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("de"):
            return "de"
        if tag.startswith("en"):
            return "en"
    return default


def day_text(t: Texts, moment: datetime) -> str:
    """A day as the reader writes it: 26 Mar 2026, 26. März 2026."""
    months = t.plain("date.months_short").split(",")
    return t.plain("date.day", day=moment.day, month=months[moment.month - 1], year=moment.year)


def moment_text(t: Texts, moment: datetime) -> str:
    """A day and a time (UTC, which the text around it says): 26 Mar 2026 14:09."""
    return f"{day_text(t, moment)} {moment:%H:%M}"
