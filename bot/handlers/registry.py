"""Every command declaration of the bot, from the handler modules that declare them; the
composition root registers the handlers and builds the menus from these."""

from __future__ import annotations

from bot.commands import Audience, Command, declared_once, menu
from bot.handlers import admins, common, influencer, managers, privacy, profiles, webhooks

COMMANDS: tuple[Command, ...] = declared_once(
    (
        influencer.COMMANDS,
        common.COMMANDS,
        privacy.COMMANDS,
        managers.COMMANDS,
        profiles.COMMANDS,
        admins.COMMANDS,
        webhooks.COMMANDS,
    )
)
# The default menu (everyone who has no menu of their own sees it).
INFLUENCER_COMMANDS = menu(COMMANDS, Audience.INFLUENCER)
