"""Telegram's limits hold under a burst: many results at once, none lost, none twice, no 429."""

from __future__ import annotations

import asyncio

from sandbox.facebook import Consent, FbPage, FbUser, IgAccount
from sandbox.telegram import TgUser
from tests.world import MANAGER, World

N = 30


async def test_a_burst_of_results_within_telegrams_limits(world: World) -> None:
    people = [TgUser(id=8000 + i, first_name=f"C{i}", language_code="en") for i in range(N)]
    csv = "\n".join(f"creator{i:02d}" for i in range(N)).encode()
    world.telegram.send_document(MANAGER, "burst.csv", csv)
    await world.settle()
    links = world.telegram.messages(MANAGER.id)[-1].document_bytes or b""
    tokens = [line.rsplit("start=", 1)[1] for line in links.decode().splitlines()[1:]]
    assert len(tokens) == N

    for person, token in zip(people, tokens, strict=True):
        world.telegram.send_text(person, f"/start {token}")
    await world.settle(timeout=30)
    for _ in range(2):  # both checks: yes
        for person in people:
            world.telegram.press(person, world.telegram.last_message(person.id), "Yes")
        await world.settle(timeout=30)

    # Telegram's real limits from here on: 30 messages/s overall, 1 per second per chat.
    world.telegram.set_rate_limits(global_per_second=30, per_chat_per_second=1)
    callbacks = []
    for i, person in enumerate(people):
        fb = FbUser(
            id=f"fb-{i}",
            name=person.first_name,
            pages=[
                FbPage(
                    id=f"p-{i}", name=f"Page {i}", instagram=IgAccount(f"ig-{i}", f"creator{i:02d}")
                )
            ],
        )
        world.graph.set_person(fb, Consent() if i % 3 else Consent(cancel=True))
        dialog = await world.browser.get(world.login_url(person))
        callbacks.append(dialog.headers["location"])
    pages = await asyncio.gather(*(world.browser.get(url) for url in callbacks))
    assert all(p.status_code == 200 for p in pages)

    def results(person: TgUser) -> list[object]:
        return [
            m
            for m in world.telegram.messages(person.id)
            if m.text.startswith(("✅ Connected!", "❌ Not connected yet"))
        ]

    for _ in range(300):
        if all(results(p) for p in people):
            break
        await asyncio.sleep(0.1)
    told = ""
    for _ in range(300):
        told = "\n".join(m.text for m in world.telegram.messages(MANAGER.id) if "📨" not in m.text)
        if all(f"@creator{i:02d} " in told for i in range(N)):
            break
        await asyncio.sleep(0.1)
    for i, person in enumerate(people):
        assert len(results(person)) == 1, person
        handle = f"@creator{i:02d}"
        # Told once, never twice: exactly one notice names this result.
        assert told.count(f"{handle} is connected") + told.count(f"{handle} tried") == 1, i
    notices = [m for m in world.telegram.messages(MANAGER.id) if "📨" not in m.text][1:]
    assert len(notices) < N / 3  # combined, not one per result
    assert world.telegram.rate_limited_count == 0
