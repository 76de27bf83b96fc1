"""The one button-data codec (`bot.buttons`): every kind of inline button packs to a prefix and
":"-joined fields within Telegram's 64 bytes and parses back; anything else (stale, forged,
malformed, another kind's) parses to None and never raises. End to end on both engines: the
language buttons in the new and the old layout, and forged presses to every handler each get one
answer and change nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram.constants import InlineKeyboardButtonLimit

from bot.buttons import MAX_BYTES, Action, ButtonData, Press
from bot.console_screens import InviteAgain, ListPage
from bot.handlers.influencer import ChooseLanguage
from bot.handlers.privacy import Forget, ForgetChoice
from bot.models import MAX_ROW_ID, InviteStatus, Step
from tests.world import ANNA, MANAGER, World, close_world, make_world


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Sample(ButtonData):
    """A kind of the tests' own, with a field of every type the codec carries."""

    prefix: ClassVar[str] = "zt1"
    number: int
    colour: Colour
    note: str


KINDS: tuple[type[ButtonData], ...] = (Press, ChooseLanguage, Forget, ListPage, InviteAgain, Sample)
PRODUCT_KINDS = KINDS[:-1]

# --- the pure codec ------------------------------------------------------------------------------


def test_the_limit_is_telegrams() -> None:
    assert MAX_BYTES == InlineKeyboardButtonLimit.MAX_CALLBACK_DATA == 64


@pytest.mark.parametrize(
    ("button", "data"),
    [
        (Press(Action.YES, 17, Step.PAGE_PUBLIC), "c1:y:17:page_public"),
        (Press(Action.NEW_LINK, MAX_ROW_ID, Step.LOGIN), "c1:l:2147483647:login"),
        (ChooseLanguage("de"), "lg:de"),
        (Forget(ForgetChoice.CONFIRM), "p1:forget"),
        (Forget(ForgetChoice.KEEP), "p1:keep"),
        (ListPage("all", 0), "l1:all:0"),
        (ListPage(InviteStatus.LOGIN_STARTED.value, 12), "l1:login_started:12"),
        (InviteAgain(1), "ia:1"),
        (Sample(0, Colour.BLUE, ""), "zt1:0:blue:"),
        (Sample(7, Colour.RED, "grüße, ok"), "zt1:7:red:grüße, ok"),
    ],
)
def test_round_trip(button: ButtonData, data: str) -> None:
    assert button.pack() == data
    assert type(button).parse(data) == button
    assert type(button).pattern().match(data)


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        # Written by the code before the codec; chats keep such buttons for weeks.
        (Press, "c1:y:3:page_public", Press(Action.YES, 3, Step.PAGE_PUBLIC)),
        (Press, "c1:c:3:page_linked", Press(Action.RESUME, 3, Step.PAGE_LINKED)),
        (Press, "c1:r:3:login", Press(Action.RETRY, 3, Step.LOGIN)),
        (Forget, "p1:forget", Forget(ForgetChoice.CONFIRM)),
        (ListPage, "l1:pending:2", ListPage("pending", 2)),
        (InviteAgain, "ia:41", InviteAgain(41)),
        # The old language button (a flow button with id 0), read for a transition.
        (ChooseLanguage, "c1:g:0:de", ChooseLanguage("de")),
        (Press, "c1:g:0:de", None),
    ],
)
def test_buttons_made_before_the_codec(
    kind: type[ButtonData], data: str, expected: ButtonData | None
) -> None:
    assert kind.parse(data) == expected


def test_the_64_byte_limit_counts_bytes() -> None:
    room = MAX_BYTES - len("zt1:1:red:")
    assert len(Sample(1, Colour.RED, "x" * room).pack()) == MAX_BYTES
    with pytest.raises(ValueError, match="65 bytes"):
        Sample(1, Colour.RED, "x" * (room + 1)).pack()
    with pytest.raises(ValueError, match="bytes"):  # "ä" is two bytes in UTF-8
        Sample(1, Colour.RED, "ä" * (room // 2 + 1)).pack()
    assert Sample.parse("zt1:1:red:" + "x" * (room + 1)) is None


@pytest.mark.parametrize(
    "button",
    [
        Sample(1, Colour.RED, "a:b"),  # would read back as four fields
        Sample(-1, Colour.RED, ""),
        Sample(MAX_ROW_ID + 1, Colour.RED, ""),
        Sample(True, Colour.RED, ""),
        Sample(1, Action.YES, ""),  # type: ignore[arg-type]
        Sample("1", Colour.RED, ""),  # type: ignore[arg-type]
        Sample(1, Colour.RED, "\ud800"),  # not UTF-8
    ],
)
def test_pack_refuses_what_would_not_read_back(button: ButtonData) -> None:
    with pytest.raises(ValueError):
        button.pack()


def test_a_kind_checks_its_own_fields() -> None:
    for make in (
        lambda: Press(Action.YES, 0, Step.LOGIN),
        lambda: InviteAgain(0),
        lambda: ChooseLanguage("fr"),
        lambda: ListPage("bogus", 0),
    ):
        with pytest.raises(ValueError):
            make()


FORGED: list[tuple[type[ButtonData], str | None]] = [
    (Press, None),
    (Press, ""),
    (Press, "c1"),
    (Press, "c1:"),
    (Press, "c1:y:17"),  # too few fields
    (Press, "c1:y:17:page_public:"),  # too many
    (Press, "c2:y:17:page_public"),  # another layout
    (Press, "C1:y:17:page_public"),
    (Press, " c1:y:17:page_public"),
    (Press, "c1:Y:17:page_public"),  # enum values are exact
    (Press, "c1:x:17:page_public"),  # no such action
    (Press, "c1:y:17:page_secret"),  # no such step
    (Press, "c1:y:17:"),
    (Press, "c1:y:0:page_public"),  # no row has id 0
    (Press, "c1:y:017:page_public"),  # only what str(int) writes
    (Press, "c1:y:+17:page_public"),
    (Press, "c1:y:-17:page_public"),
    (Press, "c1:y: 17:page_public"),
    (Press, "c1:y:17 :page_public"),
    (Press, "c1:y:1_7:page_public"),
    (Press, "c1:y:１７:page_public"),  # fullwidth digits
    (Press, "c1:y:²:page_public"),
    (Press, "c1:y:2147483648:page_public"),  # beyond the 32-bit row ids
    (Press, "c1:y:9223372036854775808:page_public"),
    (Press, "c1:y:99999999999999999999999:page_public"),
    (Press, "c1:y:17:page_public\n"),
    (Press, "c1:y:17:\ud800"),  # lone surrogate
    (Press, "ia:17"),  # another kind
    (ChooseLanguage, "lg:fr"),
    (ChooseLanguage, "lg:"),
    (ChooseLanguage, "lg"),
    (ChooseLanguage, "lg:de:x"),
    (ChooseLanguage, "c1:g:0:fr"),
    (ChooseLanguage, "c1:g:0:de:x"),
    (ChooseLanguage, "c1:g:0:"),
    (ChooseLanguage, "c1:y:17:page_public"),
    (Forget, "p1"),
    (Forget, "p1:"),
    (Forget, "p1:forget-all"),
    (Forget, "p1:keep:5"),
    (Forget, "p1:" + "x" * 60),
    (ListPage, "l1:x"),
    (ListPage, "l1:all"),
    (ListPage, "l1:all:"),
    (ListPage, "l1:all:²"),
    (ListPage, "l1:pending:-1"),
    (ListPage, "l1:all:99999999999999999999999"),
    (ListPage, "l1:bogus:0"),
    (ListPage, "l1:ALL:0"),
    (InviteAgain, "ia"),
    (InviteAgain, "ia:"),
    (InviteAgain, "ia:0"),
    (InviteAgain, "ia:²"),
    (InviteAgain, "ia:2147483648"),
    (InviteAgain, "ia:1:1"),
    (Sample, "zt1:1:red"),
    (Sample, "zt1:1:green:x"),
    (Sample, "zt1:1:red:a:b"),
]


@pytest.mark.parametrize(("kind", "data"), FORGED)
def test_forged_or_malformed_data_is_none(kind: type[ButtonData], data: str | None) -> None:
    assert kind.parse(data) is None


def test_patterns_route_by_prefix_only() -> None:
    # Malformed data with a kind's prefix still reaches that kind's handler, which answers it.
    assert Press.pattern().match("c1:whatever")
    assert InviteAgain.pattern().match("ia")
    assert not ListPage.pattern().match("lg:de")
    assert not Press.pattern().match("c10:y:1:login")
    # Each packed button is routed to its own kind's handler only.
    samples = [
        Press(Action.HOW, 5, Step.PAGE_LINKED),
        ChooseLanguage("en"),
        Forget(ForgetChoice.KEEP),
        ListPage("all", 1),
        InviteAgain(5),
        Sample(5, Colour.RED, "n"),
    ]
    for button in samples:
        routed = [kind for kind in KINDS if kind.pattern().match(button.pack())]
        assert routed == [type(button)]
    prefixes = [kind.prefix for kind in KINDS]
    assert len(set(prefixes)) == len(prefixes)


def test_a_kind_declared_wrongly_fails_early() -> None:
    with pytest.raises(TypeError, match="prefix 'c1'"):

        @dataclass(frozen=True)
        class Twin(ButtonData):
            prefix: ClassVar[str] = "c1"

    for bad in ("", "x:y", "Ab", "toolongprefix"):
        with pytest.raises(TypeError, match="prefix"):
            type("Bad", (ButtonData,), {"prefix": bad})

    @dataclass(frozen=True)
    class Floaty(ButtonData):
        prefix: ClassVar[str] = "zt2"
        amount: float

    with pytest.raises(TypeError, match="amount"):
        Floaty.pattern()


_TOKENS = st.sampled_from(
    [kind.prefix for kind in KINDS]
    + [a.value for a in Action]
    + [s.value for s in Step]
    + [c.value for c in ForgetChoice]
    + ["all", "de", "en", "g", "0", "1", "17", "01", "-1", "²", "2147483647", "2147483648", ""]
)
_NEAR_MISSES = st.lists(_TOKENS | st.text(max_size=8), min_size=1, max_size=6).map(":".join)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.text(max_size=80) | _NEAR_MISSES | st.binary(max_size=70).map(repr))
def test_parse_never_raises_and_accepts_only_what_pack_writes(data: str) -> None:
    for kind in KINDS:
        parsed = kind.parse(data)
        if parsed is not None:
            assert type(parsed) is kind
            if not (kind is ChooseLanguage and data.startswith("c1:g:0:")):
                assert parsed.pack() == data  # one spelling per button: nothing else is read


@settings(max_examples=200)
@given(
    button=st.builds(
        Press, st.sampled_from(Action), st.integers(1, MAX_ROW_ID), st.sampled_from(Step)
    )
    | st.builds(
        ListPage,
        st.sampled_from(["all", *(s.value for s in InviteStatus)]),
        st.integers(0, MAX_ROW_ID),
    )
    | st.builds(InviteAgain, st.integers(1, MAX_ROW_ID))
    | st.builds(Sample, st.integers(0, MAX_ROW_ID), st.sampled_from(Colour), st.text(max_size=70))
)
def test_every_button_reads_back_or_is_refused_when_made(button: ButtonData) -> None:
    if isinstance(button, Sample):
        written = f"zt1:{button.number}:{button.colour}:{button.note}"
        if ":" in button.note or len(written.encode()) > MAX_BYTES:
            with pytest.raises(ValueError):
                button.pack()
            return
    data = button.pack()
    assert len(data.encode()) <= MAX_BYTES
    assert type(button).parse(data) == button


# --- end to end ----------------------------------------------------------------------------------


async def test_language_buttons_new_and_old_layout(world: World) -> None:
    world.telegram.send_text(ANNA, "/language")
    await world.settle()
    choice = world.telegram.last_message(ANNA.id)
    assert [b["callback_data"] for b in choice.buttons[0]] == ["lg:en", "lg:de"]

    await world.answer(ANNA, "Deutsch")
    assert "ich spreche ab jetzt Deutsch" in world.telegram.last_message(ANNA.id).text
    assert await world.rows(f"SELECT language FROM person WHERE telegram_id = {ANNA.id}") == [
        ("de",)
    ]

    # A button of the layout before the codec, still in the chat: it still chooses.
    world.telegram.press_data(ANNA, choice.message_id, "c1:g:0:en")
    await world.settle()
    assert "I will speak English" in world.telegram.last_message(ANNA.id).text
    assert await world.rows(f"SELECT language FROM person WHERE telegram_id = {ANNA.id}") == [
        ("en",)
    ]

    # Forged ones are refused with an alert, and the language stays.
    for data in ("lg:fr", "lg:", "lg", "lg:de:x", "c1:g:0:fr", "c1:g:0:"):
        before = len(world.telegram.callback_answers)
        world.telegram.press_data(ANNA, choice.message_id, data)
        await world.settle()
        [alert] = world.telegram.callback_answers[before:]
        assert alert.get("text") == "This button is no longer valid." and alert.get("show_alert")
    assert await world.rows(f"SELECT language FROM person WHERE telegram_id = {ANNA.id}") == [
        ("en",)
    ]


ANY_KIND_FORGED = [
    "",
    ":",
    "zz:1",
    "\u00ff" * 10,
    *(data for _, data in FORGED if data is not None and data.isprintable()),
]


@pytest.fixture
async def patient_world(database_url: str) -> AsyncIterator[World]:
    """The world, with room for one person's many presses (the flood limit is tested elsewhere)."""
    w = await make_world(database_url, person_update_burst=1000, person_updates_per_second=100)
    try:
        yield w
    finally:
        await close_world(w)


@pytest.mark.parametrize("who", ["influencer", "manager"])
async def test_every_forged_press_gets_one_answer_and_changes_nothing(
    patient_world: World, who: str
) -> None:
    world = patient_world
    token = await world.invite("anna.bakes")
    question = await world.open_link(ANNA, token)
    user = ANNA if who == "influencer" else MANAGER
    if user is MANAGER:
        world.telegram.send_text(MANAGER, "/list")
        await world.settle()
    shown = question if user is ANNA else world.telegram.last_message(MANAGER.id)
    invitations = await world.rows("SELECT id, status, step FROM invitation")
    said = len(world.telegram.messages(user.id))
    for data in ANY_KIND_FORGED:
        before = len(world.telegram.callback_answers)
        world.telegram.press_data(user, shown.message_id, data)
        await world.settle()
        answers = world.telegram.callback_answers[before:]
        assert len(answers) == 1, (data, answers)
        assert answers[0].get("show_alert") is True, (data, answers)  # refused, never acted on
    assert await world.rows("SELECT id, status, step FROM invitation") == invitations
    new = world.telegram.messages(user.id)[said:]
    assert not any("went wrong" in m.text for m in new)
    assert all(re.search(r"\S", m.text) for m in new)
