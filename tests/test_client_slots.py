"""The judge client's request slots: a bound on requests in flight that serves verdicts
already begun (a retry after a 429, a re-ask) before verdicts not yet started."""

from __future__ import annotations

import asyncio
import random

import pytest

from judgecal.judge.client import _Slots


def test_a_begun_verdict_takes_the_next_free_slot_before_fresh_ones() -> None:
    async def scenario() -> list[str]:
        slots = _Slots(1)
        order: list[str] = []
        await slots.acquire(begun=False)  # the one slot is busy

        async def wait(name: str, begun: bool) -> None:
            async with slots.slot(begun):
                order.append(name)
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(wait("fresh-1", False)),
                 asyncio.create_task(wait("fresh-2", False))]
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(wait("retry-1", True)))
        await asyncio.sleep(0)
        tasks.append(asyncio.create_task(wait("retry-2", True)))
        await asyncio.sleep(0)
        slots.release()
        await asyncio.gather(*tasks)
        return order

    # Retries in the order they asked, then fresh requests in the order they asked.
    assert asyncio.run(scenario()) == ["retry-1", "retry-2", "fresh-1", "fresh-2"]


def test_a_waiter_cancelled_as_it_is_handed_a_slot_passes_it_on() -> None:
    async def scenario() -> tuple[list[str], int]:
        slots = _Slots(1)
        got: list[str] = []
        await slots.acquire(begun=False)

        async def wait(name: str) -> None:
            async with slots.slot(begun=False):
                got.append(name)

        first = asyncio.create_task(wait("first"))
        second = asyncio.create_task(wait("second"))
        await asyncio.sleep(0)
        slots.release()  # hands the slot to `first`...
        first.cancel()  # ...which is cancelled before it runs again
        await asyncio.gather(first, second, return_exceptions=True)
        return got, slots._free

    got, free = asyncio.run(scenario())
    assert got == ["second"]
    assert free == 1  # nothing leaked: the one slot is free again


def test_cancelled_waiters_leave_no_slot_taken_or_lost() -> None:
    async def scenario() -> int:
        slots = _Slots(2)
        await slots.acquire(begun=False)
        await slots.acquire(begun=False)
        waiting = [asyncio.create_task(slots.acquire(begun=k % 2 == 0)) for k in range(6)]
        await asyncio.sleep(0)
        for task in waiting[:4]:
            task.cancel()
        slots.release()
        slots.release()
        await asyncio.gather(*waiting, return_exceptions=True)
        # The two live waiters hold the two slots; give them back.
        slots.release()
        slots.release()
        return slots._free

    assert asyncio.run(scenario()) == 2


@pytest.mark.parametrize("seed", range(5))
def test_never_more_in_flight_than_the_bound_and_every_request_is_served(seed: int) -> None:
    rng = random.Random(seed)
    bound = rng.randint(1, 6)

    async def scenario() -> tuple[int, int]:
        slots = _Slots(bound)
        in_flight = peak = served = 0

        async def request(begun: bool) -> None:
            nonlocal in_flight, peak, served
            async with slots.slot(begun):
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    await asyncio.sleep(rng.random() / 1000)
                finally:
                    in_flight -= 1
                served += 1

        tasks = [asyncio.create_task(request(rng.random() < 0.3)) for _ in range(200)]
        doomed = rng.sample(tasks, 20)
        await asyncio.sleep(0.001)
        for task in doomed:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = sum(isinstance(r, asyncio.CancelledError) for r in results)
        assert served + cancelled == 200
        return peak, slots._free

    peak, free = asyncio.run(scenario())
    assert 1 <= peak <= bound
    assert free == bound
