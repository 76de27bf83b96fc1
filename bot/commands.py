"""Command declarations: each handler module declares its commands once (name, audience, menu
text, handler), and both the `CommandHandler`s and every command menu are built from those
declarations. Pure data: no handler or Telegram imports, so the menus need not import handlers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Audience(StrEnum):
    INFLUENCER = "influencer"
    MANAGER = "manager"
    ADMIN = "admin"


@dataclass(frozen=True)
class Command:
    """One command. `audience` lists whose menu shows it (/help and /language are everyone's);
    `rank` is its place in any menu (lower first), so each menu lists its commands in one order.
    `private` commands answer only in private chats."""

    name: str
    audience: frozenset[Audience]
    handler_attr: str
    rank: int
    private: bool = False

    @property
    def description_key(self) -> str:
        return f"menu.{self.name}"


def command(
    name: str, *audience: Audience, handler: str | None = None, rank: int, private: bool = False
) -> Command:
    return Command(
        name=name,
        audience=frozenset(audience),
        handler_attr=handler or name,
        rank=rank,
        private=private,
    )


def menu(commands: Iterable[Command], *audiences: Audience) -> tuple[str, ...]:
    """The command names of a menu for these audiences: the first audience's commands, then the
    next one's not listed yet, each group in rank order."""
    ordered = sorted(commands, key=lambda c: c.rank)
    names: list[str] = []
    for audience in audiences:
        names += [c.name for c in ordered if audience in c.audience and c.name not in names]
    return tuple(names)


def declared_once(groups: Sequence[Sequence[Command]]) -> tuple[Command, ...]:
    """All declarations, each command name declared exactly once."""
    everything = tuple(c for group in groups for c in group)
    names = [c.name for c in everything]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"commands declared twice: {twice}")
    return everything
