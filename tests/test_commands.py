"""Commands are declared once: every command the running bot answers has exactly one declaration,
and every declaration is in the menus of its audience (as set on the Telegram stand-in), with its
catalog description."""

from __future__ import annotations

from collections import Counter

from telegram.ext import CommandHandler

from bot.commands import Audience, Command
from bot.handlers.registry import COMMANDS
from bot.i18n import Texts
from tests.world import MANAGER, World


def _registered(world: World) -> Counter[str]:
    names: Counter[str] = Counter()
    for group in world.bot.application.handlers.values():
        for handler in group:
            if isinstance(handler, CommandHandler):
                names.update(handler.commands)
    return names


def _declared(audience: Audience) -> list[Command]:
    return sorted((c for c in COMMANDS if audience in c.audience), key=lambda c: c.rank)


def _menu(world: World, scope: dict[str, object]) -> dict[str, str]:
    return {c["command"]: c["description"] for c in world.telegram.commands_for(scope)}


async def test_every_registered_command_is_declared_exactly_once(world: World) -> None:
    registered = _registered(world)
    declared = Counter(c.name for c in COMMANDS)
    assert set(registered) == set(declared)
    assert all(n == 1 for n in declared.values()), declared
    assert all(n == 1 for n in registered.values()), registered  # one handler per command
    assert all(c.audience for c in COMMANDS)  # each is in some menu


async def test_every_declaration_is_in_the_menus_of_its_audience(world: World) -> None:
    en = Texts("en")
    default = _menu(world, {"type": "default"})
    assert list(default) == [c.name for c in _declared(Audience.INFLUENCER)]
    for c in _declared(Audience.INFLUENCER):
        assert default[c.name] == en.plain(c.description_key)

    # Maria is an administrator; before any brand exists her menu is the admin one (+ /invite),
    # set at start-up once she has a chat with the bot.
    world.telegram.send_text(MANAGER, "/help")
    await world.settle()
    await world.restart()
    scope = {"type": "chat", "chat_id": MANAGER.id}
    admin_menu = _menu(world, scope)
    for c in _declared(Audience.ADMIN):
        assert admin_menu[c.name] == en.plain(c.description_key)

    await world.invite("anna.bakes")  # her first /invite makes her the brand's manager too
    manager_menu = _menu(world, scope)
    for c in (*_declared(Audience.MANAGER), *_declared(Audience.ADMIN)):
        assert manager_menu[c.name] == en.plain(c.description_key)
    # Commands meant for influencers only are in no manager's menu.
    only_influencers = {c.name for c in COMMANDS if c.audience == {Audience.INFLUENCER}}
    assert only_influencers.isdisjoint(manager_menu) and only_influencers.isdisjoint(admin_menu)
