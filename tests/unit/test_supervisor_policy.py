"""The restart-policy engine: RestartPolicy validation and RestartTracker decisions over time.

Everything is driven by a fake clock and a fixed rng: nothing sleeps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from actors.policy import (
    Decision,
    DuringRestart,
    Restart,
    RestartPolicy,
    RestartTracker,
)

NO_JITTER: Callable[[], float] = lambda: 0.5  # noqa: E731  (2 * 0.5 - 1 == 0)
LOW: Callable[[], float] = lambda: 0.0  # noqa: E731
HIGH: Callable[[], float] = lambda: 1.0  # noqa: E731


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_tracker(
    *,
    rng: Callable[[], float] = NO_JITTER,
    clock: FakeClock | None = None,
    **policy: object,
) -> tuple[RestartTracker, FakeClock]:
    clock = clock if clock is not None else FakeClock()
    tracker = RestartTracker(RestartPolicy(**policy), clock=clock, rng=rng)  # type: ignore[arg-type]
    return tracker, clock


def assert_left_down(decision: Decision, restart_type: str) -> None:
    """Not restarted and not given up on: the policy simply leaves it down."""
    assert decision.restart is False
    assert decision.give_up is False
    assert decision.delay == 0.0
    assert restart_type in decision.reason


def crash_spaced(
    tracker: RestartTracker, clock: FakeClock, count: int, gap: float
) -> list[Decision]:
    """``count`` abnormal ends, the clock advancing ``gap`` seconds before each."""
    decisions = []
    for _ in range(count):
        clock.advance(gap)
        decisions.append(tracker.ended(abnormal=True))
    return decisions


# --- RestartPolicy --------------------------------------------------------------------------------


def test_defaults_are_valid_and_typed() -> None:
    policy = RestartPolicy()
    assert policy.restart is Restart.TRANSIENT
    assert policy.during_restart is DuringRestart.WAIT
    assert policy.max_restarts == 5
    assert policy.within == 60.0
    assert policy.backoff_initial == 0.1
    assert policy.backoff_max == 10.0
    assert policy.backoff_factor == 2.0
    assert policy.jitter == 0.2
    assert policy.reset_after == 30.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("permanent", Restart.PERMANENT),
        ("transient", Restart.TRANSIENT),
        ("temporary", Restart.TEMPORARY),
        (Restart.PERMANENT, Restart.PERMANENT),
    ],
)
def test_restart_accepts_strings(value: str, expected: Restart) -> None:
    policy = RestartPolicy(restart=value)  # type: ignore[arg-type]
    assert policy.restart is expected
    assert isinstance(policy.restart, Restart)


@pytest.mark.parametrize(
    ("value", "expected"), [("wait", DuringRestart.WAIT), ("fail", DuringRestart.FAIL)]
)
def test_during_restart_accepts_strings(value: str, expected: DuringRestart) -> None:
    policy = RestartPolicy(during_restart=value)  # type: ignore[arg-type]
    assert policy.during_restart is expected


def test_string_policy_drives_the_tracker_like_the_enum() -> None:
    tracker, _ = make_tracker(restart="permanent")
    assert tracker.ended(abnormal=False).restart is True


def test_bad_restart_string_is_rejected_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"restart policy: .*'forever'"):
        RestartPolicy(restart="forever")  # type: ignore[arg-type]


def test_bad_during_restart_string_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"restart policy: .*'maybe'"):
        RestartPolicy(during_restart="maybe")  # type: ignore[arg-type]


def test_negative_max_restarts_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"max_restarts must be >= 0, got -1"):
        RestartPolicy(max_restarts=-1)


def test_zero_max_restarts_is_allowed() -> None:
    assert RestartPolicy(max_restarts=0).max_restarts == 0


@pytest.mark.parametrize("name", ["within", "backoff_max", "reset_after", "shutdown_timeout"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_non_positive_durations_are_rejected(name: str, value: float) -> None:
    kwargs: dict[str, float] = {name: value}
    if name == "backoff_max":
        kwargs["backoff_initial"] = 0.0  # so only backoff_max itself is wrong
    with pytest.raises(ValueError, match=rf"restart policy: {name} must be positive"):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("jitter", [1.0, 1.5, -0.1])
def test_jitter_outside_unit_interval_is_rejected(jitter: float) -> None:
    with pytest.raises(ValueError, match=r"jitter must be in \[0, 1\)"):
        RestartPolicy(jitter=jitter)


@pytest.mark.parametrize("jitter", [0.0, 0.999])
def test_jitter_inside_unit_interval_is_accepted(jitter: float) -> None:
    assert RestartPolicy(jitter=jitter).jitter == jitter


@pytest.mark.parametrize("factor", [0.99, 0.0, -2.0])
def test_backoff_factor_below_one_is_rejected(factor: float) -> None:
    with pytest.raises(ValueError, match=r"backoff_factor must be >= 1"):
        RestartPolicy(backoff_factor=factor)


def test_backoff_factor_of_one_is_accepted() -> None:
    assert RestartPolicy(backoff_factor=1.0).backoff_factor == 1.0


@pytest.mark.parametrize(
    "kwargs", [{"backoff_initial": 11.0, "backoff_max": 10.0}, {"backoff_initial": -0.1}]
)
def test_backoff_initial_outside_zero_to_max_is_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"backoff_initial must be in \[0, backoff_max\]"):
        RestartPolicy(**kwargs)  # type: ignore[arg-type]


def test_backoff_initial_equal_to_max_is_accepted() -> None:
    policy = RestartPolicy(backoff_initial=10.0, backoff_max=10.0)
    assert policy.backoff_initial == policy.backoff_max


@pytest.mark.parametrize(
    "name", ["within", "backoff_initial", "backoff_max", "backoff_factor", "reset_after"]
)
def test_nan_is_rejected(name: str) -> None:
    # NaN fails every comparison, so range checks written as "reject if x <= 0" let it through;
    # a NaN ``within`` would then silently disable the restart intensity limit.
    with pytest.raises(ValueError, match=name):
        RestartPolicy(**{name: float("nan")})  # type: ignore[arg-type]


def test_policy_is_frozen() -> None:
    policy = RestartPolicy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.max_restarts = 9  # type: ignore[misc]


# --- restart types --------------------------------------------------------------------------------


def test_transient_does_not_restart_after_a_normal_end() -> None:
    tracker, _ = make_tracker(restart=Restart.TRANSIENT)
    assert_left_down(tracker.ended(abnormal=False), "transient")
    assert tracker.restarts == 0


def test_transient_restarts_after_an_abnormal_end() -> None:
    tracker, _ = make_tracker(restart=Restart.TRANSIENT, backoff_initial=0.25)
    decision = tracker.ended(abnormal=True)
    assert decision.restart is True
    assert decision.give_up is False
    assert decision.delay == pytest.approx(0.25)
    assert tracker.restarts == 1


def test_transient_normal_ends_do_not_consume_the_budget() -> None:
    tracker, clock = make_tracker(restart=Restart.TRANSIENT, max_restarts=1)
    for _ in range(10):
        clock.advance(0.1)
        assert tracker.ended(abnormal=False).give_up is False
    decision = tracker.ended(abnormal=True)
    assert decision.restart is True
    assert decision.delay == pytest.approx(0.1)  # backoff did not grow either


@pytest.mark.parametrize("abnormal", [False, True])
def test_permanent_restarts_after_any_end(abnormal: bool) -> None:
    tracker, _ = make_tracker(restart=Restart.PERMANENT, backoff_initial=0.5)
    decision = tracker.ended(abnormal=abnormal)
    assert decision.restart is True
    assert decision.give_up is False
    assert decision.delay == pytest.approx(0.5)
    assert tracker.restarts == 1


def test_permanent_normal_ends_count_towards_intensity() -> None:
    tracker, clock = make_tracker(restart=Restart.PERMANENT, max_restarts=2, within=10.0)
    assert tracker.ended(abnormal=False).restart is True
    clock.advance(1.0)
    assert tracker.ended(abnormal=False).restart is True
    clock.advance(1.0)
    decision = tracker.ended(abnormal=False)
    assert decision.restart is False
    assert decision.give_up is True


@pytest.mark.parametrize("abnormal", [False, True])
def test_temporary_never_restarts_and_never_gives_up(abnormal: bool) -> None:
    tracker, clock = make_tracker(restart=Restart.TEMPORARY, max_restarts=0, within=100.0)
    for _ in range(20):
        clock.advance(0.01)
        assert_left_down(tracker.ended(abnormal=abnormal), "temporary")
    assert tracker.restarts == 0


# --- intensity ------------------------------------------------------------------------------------


def test_intensity_exceeded_gives_up_on_the_n_plus_first_end() -> None:
    tracker, clock = make_tracker(max_restarts=3, within=60.0)
    decisions = crash_spaced(tracker, clock, 3, gap=5.0)
    assert [d.restart for d in decisions] == [True, True, True]
    assert not any(d.give_up for d in decisions)
    clock.advance(5.0)  # 15 s after the first restart: well inside the 60 s window
    decision = tracker.ended(abnormal=True)
    assert decision.restart is False
    assert decision.give_up is True
    assert decision.delay == 0.0
    assert "3" in decision.reason
    assert "60" in decision.reason
    assert decision.reason == "more than 3 restarts in 60 s"
    assert tracker.restarts == 3


def test_give_up_reason_formats_fractional_window() -> None:
    tracker, clock = make_tracker(max_restarts=1, within=2.5)
    tracker.ended(abnormal=True)
    clock.advance(1.0)
    decision = tracker.ended(abnormal=True)
    assert decision.give_up is True
    assert decision.reason == "more than 1 restarts in 2.5 s"


def test_max_restarts_zero_gives_up_at_once() -> None:
    tracker, _ = make_tracker(max_restarts=0)
    decision = tracker.ended(abnormal=True)
    assert decision.restart is False
    assert decision.give_up is True
    assert "0" in decision.reason
    assert tracker.restarts == 0


def test_giving_up_is_sticky_while_the_window_holds() -> None:
    tracker, clock = make_tracker(max_restarts=2, within=10.0)
    crash_spaced(tracker, clock, 2, gap=1.0)
    for _ in range(3):
        clock.advance(1.0)
        decision = tracker.ended(abnormal=True)
        assert decision.give_up is True
        assert decision.restart is False
    assert tracker.restarts == 2


def test_ends_spread_beyond_the_window_never_give_up() -> None:
    tracker, clock = make_tracker(max_restarts=2, within=10.0)
    decisions = crash_spaced(tracker, clock, 20, gap=5.1)  # never 3 ends within 10 s
    assert all(d.restart for d in decisions)
    assert not any(d.give_up for d in decisions)
    assert tracker.restarts == 20


def test_the_window_slides() -> None:
    tracker, clock = make_tracker(max_restarts=2, within=10.0)
    t0 = clock.now
    assert tracker.ended(abnormal=True).restart  # t0
    clock.now = t0 + 5.0
    assert tracker.ended(abnormal=True).restart  # t0 + 5
    clock.now = t0 + 11.0  # the t0 restart has left the window; t0 + 5 is still in it
    decision = tracker.ended(abnormal=True)
    assert decision.restart is True
    assert decision.reason == "restart 2 in the window"
    clock.now = t0 + 12.0  # t0 + 5 and t0 + 11 are both within 10 s
    decision = tracker.ended(abnormal=True)
    assert decision.give_up is True
    clock.now = t0 + 15.5  # t0 + 5 has left; t0 + 11 remains
    decision = tracker.ended(abnormal=True)
    assert decision.restart is True
    assert decision.give_up is False


def test_just_inside_the_window_still_counts() -> None:
    tracker, clock = make_tracker(max_restarts=1, within=10.0)
    assert tracker.ended(abnormal=True).restart
    clock.advance(9.999)
    assert tracker.ended(abnormal=True).give_up is True


def test_after_giving_up_the_window_drains_and_restarts_resume() -> None:
    tracker, clock = make_tracker(max_restarts=1, within=10.0)
    tracker.ended(abnormal=True)
    clock.advance(1.0)
    assert tracker.ended(abnormal=True).give_up is True
    clock.advance(10.0)
    assert tracker.ended(abnormal=True).restart is True


def test_restart_reason_counts_restarts_in_the_window() -> None:
    tracker, clock = make_tracker(max_restarts=5, within=60.0)
    reasons = [d.reason for d in crash_spaced(tracker, clock, 3, gap=1.0)]
    assert reasons == [
        "restart 1 in the window",
        "restart 2 in the window",
        "restart 3 in the window",
    ]


# --- backoff --------------------------------------------------------------------------------------


def test_backoff_grows_geometrically_up_to_the_cap() -> None:
    tracker, clock = make_tracker(
        max_restarts=100, within=1000.0, backoff_initial=0.1, backoff_factor=2.0, backoff_max=3.0
    )
    delays = [d.delay for d in crash_spaced(tracker, clock, 8, gap=0.01)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.0, 3.0, 3.0])


def test_backoff_with_factor_three() -> None:
    tracker, clock = make_tracker(
        max_restarts=100, within=1000.0, backoff_initial=0.5, backoff_factor=3.0, backoff_max=100.0
    )
    delays = [d.delay for d in crash_spaced(tracker, clock, 5, gap=0.01)]
    assert delays == pytest.approx([0.5 * 3.0**k for k in range(5)])


def test_backoff_factor_one_is_constant() -> None:
    tracker, clock = make_tracker(
        max_restarts=100, within=1000.0, backoff_initial=0.7, backoff_factor=1.0
    )
    delays = [d.delay for d in crash_spaced(tracker, clock, 6, gap=0.01)]
    assert delays == pytest.approx([0.7] * 6)


def test_zero_initial_backoff_restarts_immediately() -> None:
    tracker, clock = make_tracker(max_restarts=100, within=1000.0, backoff_initial=0.0)
    delays = [d.delay for d in crash_spaced(tracker, clock, 5, gap=0.01)]
    assert delays == [0.0] * 5


def test_backoff_keeps_growing_across_window_slides() -> None:
    # The window forgets old restarts, but the backoff only resets after a healthy period.
    tracker, clock = make_tracker(
        max_restarts=1, within=1.0, backoff_initial=0.1, backoff_factor=2.0, backoff_max=100.0
    )
    delays = [d.delay for d in crash_spaced(tracker, clock, 4, gap=2.0)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8])


def test_backoff_stays_capped_over_a_very_long_run() -> None:
    # A child that keeps failing to relaunch, slowly enough never to exceed the intensity, for
    # thousands of attempts: the delay must stay at backoff_max (factor ** attempt must not
    # overflow a float).
    tracker, clock = make_tracker(
        max_restarts=1, within=1.0, backoff_initial=0.1, backoff_factor=2.0, backoff_max=10.0
    )
    for _ in range(1500):
        clock.advance(2.0)
        decision = tracker.ended(abnormal=True)
        assert decision.restart is True
    assert decision.delay == pytest.approx(10.0)
    assert tracker.restarts == 1500


# --- jitter ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rng", "scale"),
    [(LOW, 0.75), (NO_JITTER, 1.0), (HIGH, 1.25), (lambda: 0.75, 1.125), (lambda: 0.25, 0.875)],
)
def test_jitter_scales_the_delay_within_bounds(rng: Callable[[], float], scale: float) -> None:
    tracker, clock = make_tracker(
        rng=rng, jitter=0.25, max_restarts=100, within=1000.0, backoff_initial=0.4
    )
    delays = [d.delay for d in crash_spaced(tracker, clock, 3, gap=0.01)]
    assert delays == pytest.approx([0.4 * scale, 0.8 * scale, 1.6 * scale])


def test_jitter_extremes_with_the_default_jitter() -> None:
    low, _ = make_tracker(rng=LOW, backoff_initial=1.0)
    high, _ = make_tracker(rng=HIGH, backoff_initial=1.0)
    assert low.ended(abnormal=True).delay == pytest.approx(0.8)
    assert high.ended(abnormal=True).delay == pytest.approx(1.2)


def test_zero_jitter_does_not_consult_the_rng() -> None:
    def rng() -> float:
        raise AssertionError("rng called with jitter == 0")

    tracker, _ = make_tracker(rng=rng, jitter=0.0, backoff_initial=0.3)
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.3)


def test_jitter_rng_is_consulted_once_per_restart() -> None:
    calls: list[int] = []

    def rng() -> float:
        calls.append(1)
        return 0.5

    tracker, clock = make_tracker(rng=rng, jitter=0.1, max_restarts=2, within=10.0)
    crash_spaced(tracker, clock, 3, gap=0.1)  # two restarts, then give up
    assert len(calls) == 2


# --- reset after a healthy period -----------------------------------------------------------------


def healthy_tracker(reset_after: float = 30.0) -> tuple[RestartTracker, FakeClock]:
    tracker, clock = make_tracker(
        max_restarts=100,
        within=1000.0,
        backoff_initial=0.1,
        backoff_factor=2.0,
        backoff_max=100.0,
        reset_after=reset_after,
    )
    delays = [d.delay for d in crash_spaced(tracker, clock, 3, gap=0.01)]
    assert delays == pytest.approx([0.1, 0.2, 0.4])
    return tracker, clock


def test_backoff_resets_after_a_healthy_period() -> None:
    tracker, clock = healthy_tracker(reset_after=30.0)
    tracker.started()
    clock.advance(31.0)
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.1)
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.2)  # and grows again


def test_backoff_resets_when_up_exactly_reset_after() -> None:
    tracker, clock = healthy_tracker(reset_after=30.0)
    tracker.started()
    clock.advance(30.0)
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.1)


def test_backoff_keeps_growing_after_a_short_up_period() -> None:
    tracker, clock = healthy_tracker(reset_after=30.0)
    tracker.started()
    clock.advance(29.9)
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.8)


def test_backoff_does_not_reset_without_started() -> None:
    tracker, clock = healthy_tracker(reset_after=30.0)
    clock.advance(500.0)  # long time, but never reported healthy
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.8)


def test_a_healthy_start_counts_for_one_end_only() -> None:
    tracker, clock = healthy_tracker(reset_after=30.0)
    tracker.started()
    clock.advance(40.0)
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.1)
    clock.advance(40.0)  # no started() since: the relaunch never became healthy
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.2)


def test_the_latest_start_is_what_counts() -> None:
    tracker, clock = healthy_tracker(reset_after=30.0)
    tracker.started()
    clock.advance(25.0)
    tracker.started()  # restarted the healthy period
    clock.advance(10.0)  # 35 s since the first started(), 10 s since the latest
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.8)


# --- reset() and the counter ----------------------------------------------------------------------


def test_reset_forgets_intensity_history() -> None:
    tracker, clock = make_tracker(max_restarts=2, within=60.0)
    crash_spaced(tracker, clock, 2, gap=1.0)
    clock.advance(1.0)
    assert tracker.ended(abnormal=True).give_up is True
    tracker.reset()
    clock.advance(1.0)
    decisions = crash_spaced(tracker, clock, 2, gap=1.0)
    assert [d.restart for d in decisions] == [True, True]
    assert decisions[0].reason == "restart 1 in the window"
    clock.advance(1.0)
    assert tracker.ended(abnormal=True).give_up is True


def test_reset_forgets_the_backoff() -> None:
    tracker, _ = healthy_tracker()
    tracker.reset()
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.1)


def test_reset_forgets_a_pending_healthy_start() -> None:
    tracker, clock = healthy_tracker(reset_after=30.0)
    tracker.started()
    tracker.reset()
    clock.advance(40.0)
    tracker.ended(abnormal=True)  # attempt 0 after reset: 0.1
    clock.advance(40.0)
    assert tracker.ended(abnormal=True).delay == pytest.approx(0.2)


def test_restarts_counter_counts_only_decided_restarts() -> None:
    tracker, clock = make_tracker(max_restarts=2, within=10.0)
    assert tracker.restarts == 0
    tracker.ended(abnormal=False)  # transient, normal: no restart
    assert tracker.restarts == 0
    crash_spaced(tracker, clock, 2, gap=1.0)
    assert tracker.restarts == 2
    clock.advance(1.0)
    assert tracker.ended(abnormal=True).give_up is True
    assert tracker.restarts == 2  # giving up is not a restart


def test_restarts_counter_survives_reset() -> None:
    tracker, clock = make_tracker(max_restarts=5, within=60.0)
    crash_spaced(tracker, clock, 3, gap=1.0)
    tracker.reset()
    assert tracker.restarts == 3  # all time
    crash_spaced(tracker, clock, 2, gap=1.0)
    assert tracker.restarts == 5


def test_trackers_are_independent() -> None:
    clock = FakeClock()
    policy = RestartPolicy(max_restarts=1, within=60.0)
    a = RestartTracker(policy, clock=clock, rng=NO_JITTER)
    b = RestartTracker(policy, clock=clock, rng=NO_JITTER)
    assert a.ended(abnormal=True).restart is True
    assert b.ended(abnormal=True).restart is True
    assert a.ended(abnormal=True).give_up is True
    assert b.restarts == 1
