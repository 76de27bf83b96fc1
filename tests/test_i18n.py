"""Every text exists in every language, with the same placeholders, and renders as valid
Telegram HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from bot.i18n import LANGUAGES, Texts, catalog, pick_language, placeholders
from bot.verdict import Outcome

_TELEGRAM_TAGS = {"b", "i", "u", "s", "a", "code", "pre"}


class _TagCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.bad: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _TELEGRAM_TAGS:
            self.bad.append(tag)
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            self.bad.append(f"/{tag}")


def test_same_keys_in_every_language() -> None:
    english = set(catalog("en"))
    for language in LANGUAGES:
        assert set(catalog(language)) == english, language


@pytest.mark.parametrize("language", LANGUAGES)
def test_same_placeholders_and_valid_html(language: str) -> None:
    for key, text in catalog(language).items():  # type: ignore[arg-type]
        assert placeholders(text) == placeholders(catalog("en")[key]), key
        check = _TagCheck()
        check.feed(text)
        assert not check.bad and not check.open, (key, check.bad, check.open)


def test_every_verdict_has_texts() -> None:
    for language in LANGUAGES:
        t = Texts(language)
        for outcome in Outcome:
            if outcome is Outcome.CONNECTED:
                continue
            assert t.has(f"verdict.{outcome}.reason"), outcome
            assert t.has(f"verdict.{outcome}.fix"), outcome
            assert t.has(f"manager.reason.{outcome}"), outcome


def test_values_are_escaped() -> None:
    text = Texts("en")("manager.connected", handle="<b>x", username="a&b", page="P<i>")
    assert "&lt;b&gt;x" in text and "a&amp;b" in text and "P&lt;i&gt;" in text


@pytest.mark.parametrize(
    ("chosen", "code", "default", "expected"),
    [
        (None, "de-AT", "en", "de"),
        (None, "DE", "en", "de"),
        (None, "en-GB", "de", "en"),
        (None, "fr", "de", "de"),
        (None, None, "en", "en"),
        ("en", "de", "en", "en"),
        ("xx", "de", "en", "de"),
    ],
)
def test_language_choice(chosen: str | None, code: str | None, default: str, expected: str) -> None:
    assert pick_language(chosen=chosen, telegram_code=code, default=default) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("language", "one", "several"),
    [
        ("en", "One permission was not granted", "These permissions were not granted"),
        ("de", "Eine Berechtigung wurde nicht erteilt", "Diese Berechtigungen wurden nicht"),
    ],
)
def test_plural_forms_follow_the_count(language: str, one: str, several: str) -> None:
    t = Texts(language)  # type: ignore[arg-type]
    key = "verdict.permissions_declined.reason"
    assert t.has(key)
    assert t(key, declined="x", count=1).startswith(one)
    for count in (0, 2, 5):
        assert t(key, declined="x", count=count).startswith(several)
    with pytest.raises(KeyError):
        t(key, declined="x")  # a text with plural forms needs its count


def test_every_plural_text_has_both_forms() -> None:
    for language in LANGUAGES:
        keys = set(catalog(language))
        for key in keys:
            stem, _, form = key.rpartition(".")
            if form == "one":
                assert f"{stem}.other" in keys and stem not in keys, key
