"""The reorder buffer releases a brief's events strictly in seq order, or asks for a resync."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from generation.live_order import ReorderBuffer

WINDOW = 2.0


def _buffer(delivered: int = 3) -> ReorderBuffer[str]:
    return ReorderBuffer(delivered=delivered, window=WINDOW)


def test_messages_in_order_pass_straight_through():
    buffer = _buffer()
    assert buffer.offer(4, "m4", now=0.0) == ["m4"]
    assert buffer.offer(5, "m5", now=0.1) == ["m5"]
    assert buffer.delivered == 5
    assert buffer.held == 0
    assert buffer.deadline() is None


def test_what_the_snapshot_covers_and_duplicates_are_dropped():
    buffer = _buffer()
    assert buffer.offer(2, "old", now=0.0) == []
    assert buffer.offer(3, "snapshot's own", now=0.0) == []
    assert buffer.offer(4, "m4", now=0.0) == ["m4"]
    assert buffer.offer(4, "m4 again", now=0.0) == []
    assert buffer.offer(6, "m6", now=0.0) == []
    assert buffer.offer(6, "m6 again", now=0.1) == []
    assert buffer.offer(5, "m5", now=0.2) == ["m5", "m6"]
    assert buffer.held == 0


def test_an_early_message_waits_for_the_ones_before_it():
    buffer = _buffer()
    assert buffer.offer(21, "m21", now=0.0) == []
    assert buffer.offer(22, "m22", now=0.1) == []
    assert buffer.held == 2
    released = []
    for seq in range(4, 21):
        released += buffer.offer(seq, f"m{seq}", now=0.5)
    assert released == [f"m{seq}" for seq in range(4, 23)]
    assert buffer.delivered == 22
    assert not buffer.needs_resync(now=100.0)


def test_a_hole_open_for_less_than_the_window_needs_no_resync():
    buffer = _buffer()
    buffer.offer(5, "m5", now=10.0)
    assert buffer.deadline() == 10.0 + WINDOW
    assert not buffer.needs_resync(now=10.0 + WINDOW - 0.01)


def test_a_hole_still_open_after_the_window_needs_a_resync():
    buffer = _buffer()
    buffer.offer(5, "m5", now=10.0)
    buffer.offer(6, "m6", now=11.5)
    assert buffer.needs_resync(now=10.0 + WINDOW)
    assert buffer.delivered == 3  # nothing past the hole leaves


def test_the_window_runs_from_the_longest_held_message():
    buffer = _buffer()
    buffer.offer(5, "m5", now=10.0)
    buffer.offer(4, "m4", now=11.0)  # fills the first hole: 4 and 5 leave
    buffer.offer(8, "m8", now=11.5)
    buffer.offer(7, "m7", now=11.8)
    assert buffer.deadline() == 11.5 + WINDOW
    assert not buffer.needs_resync(now=12.5)
    assert buffer.needs_resync(now=13.5)


def test_after_a_resync_it_goes_on_from_the_snapshot():
    buffer = _buffer()
    buffer.offer(5, "m5", now=0.0)
    buffer.offer(9, "m9", now=0.5)
    buffer.offer(10, "m10", now=0.6)
    assert buffer.needs_resync(now=WINDOW)
    # The snapshot was read at seq 8: 5 is in it, 9 and 10 follow it.
    assert buffer.restart(8, now=WINDOW) == ["m9", "m10"]
    assert buffer.delivered == 10
    assert buffer.held == 0
    assert buffer.offer(7, "late m7", now=WINDOW) == []
    assert buffer.offer(11, "m11", now=WINDOW) == ["m11"]


def test_messages_held_past_a_snapshot_get_a_fresh_window():
    buffer = _buffer()
    buffer.offer(5, "m5", now=0.0)
    buffer.offer(12, "m12", now=1.0)
    assert buffer.restart(8, now=WINDOW) == []
    assert buffer.deadline() == WINDOW + WINDOW
    assert not buffer.needs_resync(now=WINDOW + 1.0)
    released = []
    for seq in (9, 10, 11):
        released += buffer.offer(seq, f"m{seq}", now=WINDOW + 1.0)
    assert released == ["m9", "m10", "m11", "m12"]


def test_the_window_must_be_positive():
    with pytest.raises(ValueError):
        ReorderBuffer(delivered=0, window=0)


@st.composite
def _runs_out_of_order(draw: st.DrawFn) -> tuple[int, list[int], list[float]]:
    """A snapshot's seq, a consecutive run after it in any order, and arrival times within the window."""
    start = draw(st.integers(min_value=0, max_value=10_000))
    order = draw(st.permutations(range(start + 1, start + 1 + draw(st.integers(1, 60)))))
    times = sorted(draw(st.lists(st.floats(0.0, WINDOW * 0.999), min_size=len(order), max_size=len(order))))
    return start, order, times


@given(_runs_out_of_order())
def test_any_permutation_delivered_within_the_window_comes_out_in_order_once(run):
    start, order, times = run
    buffer: ReorderBuffer[int] = ReorderBuffer(delivered=start, window=WINDOW)
    released: list[int] = []
    for seq, now in zip(order, times, strict=True):
        released += buffer.offer(seq, seq, now=now)
        assert not buffer.needs_resync(now=now)
    assert released == sorted(order)
    assert buffer.held == 0
    assert buffer.delivered == start + len(order)


@given(_runs_out_of_order(), st.data())
def test_stale_and_repeated_messages_change_nothing(run, data):
    start, order, _times = run
    noisy: list[int] = []
    for seq in order:
        noisy.append(seq)
        noisy += data.draw(st.lists(st.integers(start - 5, seq), max_size=3))  # already seen or covered
    buffer: ReorderBuffer[int] = ReorderBuffer(delivered=start, window=WINDOW)
    released: list[int] = []
    for seq in noisy:
        released += buffer.offer(seq, seq, now=0.0)
    assert released == sorted(order)


@given(_runs_out_of_order(), st.data())
def test_nothing_passes_a_hole_and_a_resync_resumes_in_order(run, data):
    start, order, times = run
    missing = data.draw(st.sampled_from(order))
    buffer: ReorderBuffer[int] = ReorderBuffer(delivered=start, window=WINDOW)
    released: list[int] = []
    for seq, now in zip(order, times, strict=True):
        if seq != missing:
            released += buffer.offer(seq, seq, now=now)
    assert released == list(range(start + 1, missing))
    if missing == max(order):
        assert buffer.held == 0
        return
    assert buffer.needs_resync(now=times[-1] + WINDOW)
    # The snapshot covers the lost message and maybe some after it; the rest follows in order.
    snapshot_seq = data.draw(st.integers(missing, max(order)))
    after = buffer.restart(snapshot_seq, now=times[-1] + WINDOW)
    assert after == list(range(snapshot_seq + 1, max(order) + 1))
    assert buffer.held == 0
