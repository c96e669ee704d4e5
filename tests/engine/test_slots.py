"""Slot placement: prefix reuse, forking and LRU eviction (pure Python)."""

from __future__ import annotations

from corral.engine.slots import Placement, Slot, common_prefix_len, plan_placement


def test_common_prefix_len() -> None:
    assert common_prefix_len([], [1]) == 0
    assert common_prefix_len([1, 2, 3], (1, 2, 3, 4)) == 3
    a = list(range(1000))
    b = [*range(700), -1, *range(701, 1000)]
    assert common_prefix_len(a, b) == 700
    assert common_prefix_len(a, a) == 1000


def _slots(
    *histories: list[int], busy: tuple[int, ...] = (), used: tuple[int, ...] = ()
) -> list[Slot]:
    slots = [Slot(i, list(h)) for i, h in enumerate(histories)]
    for i in busy:
        slots[i].busy = True
    for i, t in enumerate(used):
        slots[i].last_used = t
    return slots


def test_extending_history_takes_its_own_slot() -> None:
    slots = _slots([], [1, 2, 3], [], used=(0, 5, 0))
    assert plan_placement(slots, [1, 2, 3, 4, 5], can_copy=True) == Placement(1, 3)


def test_always_evaluates_the_last_prompt_token() -> None:
    slots = _slots([1, 2, 3])
    assert plan_placement(slots, [1, 2, 3], can_copy=True) == Placement(0, 2)


def test_divergent_history_is_forked_into_the_lru_slot() -> None:
    slots = _slots([1, 2, 3, 9, 9], [7], used=(5, 1))
    assert plan_placement(slots, [1, 2, 3, 4], can_copy=True) == Placement(1, 3, copy_from=0)


def test_copy_from_a_busy_slot() -> None:
    slots = _slots([1, 2, 3, 4], [], busy=(0,))
    assert plan_placement(slots, [1, 2, 3, 8], can_copy=True) == Placement(1, 3, copy_from=0)


def test_without_copy_the_best_idle_slot_is_trimmed() -> None:
    slots = _slots([1, 2, 3, 9, 9], [7], used=(5, 1))
    assert plan_placement(slots, [1, 2, 3, 4], can_copy=False) == Placement(0, 3)
    slots = _slots([5], [7], used=(5, 1))
    assert plan_placement(slots, [1, 2], can_copy=False) == Placement(1, 0)


def test_no_common_prefix_uses_the_lru_slot() -> None:
    slots = _slots([5, 5], [6, 6], used=(3, 2))
    assert plan_placement(slots, [1, 2], can_copy=True) == Placement(1, 0)


def test_all_busy() -> None:
    assert plan_placement(_slots([1], busy=(0,)), [1, 2], can_copy=True) is None


def test_trim_bounds_sharing() -> None:
    s = Slot(0, [1, 2, 3, 4], shared=4)
    s.trim(2)
    assert s.tokens == [1, 2] and s.shared == 2


def test_min_copy_skips_short_copies() -> None:
    slots = _slots([1, 2, 3, 9], [7], used=(5, 1))
    assert plan_placement(slots, [1, 2, 3, 4], min_copy=4) == Placement(0, 3)
    assert plan_placement(slots, [1, 2, 3, 4], min_copy=3) == Placement(1, 3, copy_from=0)
