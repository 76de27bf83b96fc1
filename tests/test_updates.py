"""Updates of different people run at the same time; one person's run in the order they came."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from telegram import Chat, Message, Update, User

from bot.updates import PerPersonOrder


def _update(update_id: int, person: int) -> Update:
    user = User(id=person, first_name=f"P{person}", is_bot=False)
    chat = Chat(id=person, type=Chat.PRIVATE)
    message = Message(
        message_id=update_id, date=datetime.now(UTC), chat=chat, from_user=user, text="hi"
    )
    return Update(update_id=update_id, message=message)


async def test_one_persons_updates_keep_their_order_others_do_not_wait() -> None:
    processor = PerPersonOrder(16)
    log: list[str] = []
    first_may_finish = asyncio.Event()

    async def handle(name: str, wait: asyncio.Event | None = None) -> None:
        log.append(f"{name} start")
        if wait is not None:
            await wait.wait()
        log.append(f"{name} end")

    # As PTB does it: a task per update, created in the order the updates arrived.
    tasks = [
        asyncio.create_task(
            processor.process_update(_update(1, 7), handle("a1", first_may_finish))
        ),
        asyncio.create_task(processor.process_update(_update(2, 7), handle("a2"))),
        asyncio.create_task(processor.process_update(_update(3, 8), handle("b1"))),
    ]
    await asyncio.sleep(0.05)
    # Person 8 was not held up by person 7's slow update; person 7's second one waits for it.
    assert log == ["a1 start", "b1 start", "b1 end"]
    first_may_finish.set()
    await asyncio.gather(*tasks)
    assert log[3:] == ["a1 end", "a2 start", "a2 end"]


async def test_a_failing_update_does_not_block_the_next() -> None:
    processor = PerPersonOrder(4)
    done: list[int] = []

    async def fail() -> None:
        raise RuntimeError("handler bug")

    async def work() -> None:
        done.append(2)

    first = asyncio.create_task(processor.process_update(_update(1, 7), fail()))
    second = asyncio.create_task(processor.process_update(_update(2, 7), work()))
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    assert done == [2]


async def test_an_update_cancelled_while_waiting_its_turn_is_dropped_cleanly() -> None:
    processor = PerPersonOrder(4)
    release = asyncio.Event()
    ran: list[int] = []

    async def slow() -> None:
        await release.wait()
        ran.append(1)

    async def never() -> None:
        ran.append(2)

    first = asyncio.create_task(processor.process_update(_update(1, 7), slow()))
    second = asyncio.create_task(processor.process_update(_update(2, 7), never()))
    await asyncio.sleep(0.01)
    second.cancel()  # as at shutdown: the waiting coroutine is closed, not left un-awaited
    release.set()
    await first
    assert second.cancelled() and ran == [1]
