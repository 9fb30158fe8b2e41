"""Leader lease: acquire, renew, refuse others, expire, resign."""

from __future__ import annotations

from taskyard.backends.protocol import Backend

from .factory import T0, at


async def test_acquire_free_lease(backend: Backend) -> None:
    assert await backend.leader_attempt_elect(name="default", holder="a", ttl=15, now=T0) is True
    info = await backend.leader_get(name="default", now=at(1))
    assert info is not None
    assert (info.name, info.holder, info.elected_at, info.expires_at) == (
        "default",
        "a",
        T0,
        at(15),
    )


async def test_other_holder_refused_while_live(backend: Backend) -> None:
    assert await backend.leader_attempt_elect(name="default", holder="a", ttl=15, now=T0)
    assert (
        await backend.leader_attempt_elect(name="default", holder="b", ttl=15, now=at(14)) is False
    )
    info = await backend.leader_get(name="default", now=at(14))
    assert info is not None and info.holder == "a"


async def test_renew_extends_and_keeps_elected_at(backend: Backend) -> None:
    assert await backend.leader_attempt_elect(name="default", holder="a", ttl=15, now=T0)
    assert (
        await backend.leader_attempt_elect(name="default", holder="a", ttl=15, now=at(10)) is True
    )
    info = await backend.leader_get(name="default", now=at(20))
    assert info is not None and info.elected_at == T0 and info.expires_at == at(25)
    assert (
        await backend.leader_attempt_elect(name="default", holder="b", ttl=15, now=at(20)) is False
    )


async def test_expired_lease_is_taken_over(backend: Backend) -> None:
    assert await backend.leader_attempt_elect(name="default", holder="a", ttl=15, now=T0)
    assert await backend.leader_get(name="default", now=at(15)) is None
    assert (
        await backend.leader_attempt_elect(name="default", holder="b", ttl=15, now=at(15)) is True
    )
    info = await backend.leader_get(name="default", now=at(16))
    assert info is not None and info.holder == "b" and info.elected_at == at(15)
    # The old holder cannot renew what it lost.
    assert (
        await backend.leader_attempt_elect(name="default", holder="a", ttl=15, now=at(16)) is False
    )


async def test_old_holder_reacquires_after_expiry_as_a_new_term(backend: Backend) -> None:
    assert await backend.leader_attempt_elect(name="default", holder="a", ttl=5, now=T0)
    assert await backend.leader_attempt_elect(name="default", holder="a", ttl=5, now=at(6)) is True
    info = await backend.leader_get(name="default", now=at(7))
    assert info is not None and info.holder == "a" and info.expires_at == at(11)


async def test_resign_frees_at_once(backend: Backend) -> None:
    assert await backend.leader_attempt_elect(name="default", holder="a", ttl=15, now=T0)
    await backend.leader_resign(name="default", holder="a")
    assert await backend.leader_get(name="default", now=at(1)) is None
    assert await backend.leader_attempt_elect(name="default", holder="b", ttl=15, now=at(1)) is True


async def test_resign_by_non_holder_is_ignored(backend: Backend) -> None:
    assert await backend.leader_attempt_elect(name="default", holder="a", ttl=15, now=T0)
    await backend.leader_resign(name="default", holder="b")
    await backend.leader_resign(name="nothing-here", holder="b")
    info = await backend.leader_get(name="default", now=at(1))
    assert info is not None and info.holder == "a"


async def test_names_are_independent(backend: Backend) -> None:
    assert await backend.leader_attempt_elect(name="one", holder="a", ttl=15, now=T0)
    assert await backend.leader_attempt_elect(name="two", holder="b", ttl=15, now=T0)
    one = await backend.leader_get(name="one", now=T0)
    two = await backend.leader_get(name="two", now=T0)
    assert one is not None and two is not None and (one.holder, two.holder) == ("a", "b")


async def test_no_leader(backend: Backend) -> None:
    assert await backend.leader_get(name="default", now=T0) is None
