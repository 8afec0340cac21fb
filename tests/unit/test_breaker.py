"""CircuitBreaker: opens after consecutive failures, probes once per cool-down, then closes."""

from serving.cache.breaker import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: FakeClock, changes: list[bool]) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=3, cooldown_seconds=2.0, clock=clock, on_change=changes.append
    )


def test_stays_closed_below_the_failure_threshold() -> None:
    changes: list[bool] = []
    breaker = _breaker(FakeClock(), changes)

    breaker.record_failure()
    breaker.record_failure()

    assert breaker.allows_call()
    assert not breaker.is_open
    assert changes == []


def test_a_success_resets_the_count_of_consecutive_failures() -> None:
    breaker = _breaker(FakeClock(), [])

    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(2):
        breaker.record_failure()

    assert not breaker.is_open


def test_opens_after_threshold_and_refuses_calls_during_the_cooldown() -> None:
    clock, changes = FakeClock(), list[bool]()
    breaker = _breaker(clock, changes)

    for _ in range(3):
        breaker.record_failure()
    clock.now += 1.9

    assert breaker.is_open
    assert not breaker.allows_call()
    assert changes == [True]


def test_lets_exactly_one_probe_through_per_cooldown() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, [])
    for _ in range(3):
        breaker.record_failure()

    clock.now += 2.0
    first, second = breaker.allows_call(), breaker.allows_call()
    clock.now += 2.0
    after_next_cooldown = breaker.allows_call()

    assert (first, second, after_next_cooldown) == (True, False, True)


def test_a_failed_probe_keeps_it_open_and_a_successful_one_closes_it() -> None:
    clock, changes = FakeClock(), list[bool]()
    breaker = _breaker(clock, changes)
    for _ in range(3):
        breaker.record_failure()

    clock.now += 2.0
    assert breaker.allows_call()
    breaker.record_failure()
    still_open = breaker.is_open
    clock.now += 2.0
    assert breaker.allows_call()
    breaker.record_success()

    assert still_open
    assert not breaker.is_open
    assert breaker.allows_call()
    assert changes == [True, False]
