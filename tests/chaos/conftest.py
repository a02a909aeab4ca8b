"""Chaos tests: kill parts of the stack on the machine and measure how it heals (marked chaos)."""

import time

import pytest


@pytest.fixture(autouse=True, scope="session")
def _route_is_local(machine_address):
    """Refuse to touch the machine unless its address is on a local link."""


def wait_until(predicate, timeout, interval=0.2):
    """Poll ``predicate`` until it returns a truthy value; return (value, seconds taken). Fails after ``timeout`` s."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < timeout:
        try:
            last = predicate()
        except (AssertionError, RuntimeError, OSError) as exc:  # command failed, SSH error, HTTP refused
            last = exc
        if last and not isinstance(last, Exception):
            return last, time.monotonic() - started
        time.sleep(interval)
    pytest.fail(f"not recovered within {timeout} s (last: {last!r})")


@pytest.fixture
def report(capsys):
    """Print a measured recovery time next to the test's result."""

    def _report(what, seconds):
        with capsys.disabled():
            print(f"\n    [chaos] {what}: recovered in {seconds:.1f} s", end="")

    return _report
