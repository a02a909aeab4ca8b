"""Chaos tests: kill parts of the stack on the machine and measure how it heals (marked chaos)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _route_is_local(machine_address):
    """Refuse to touch the machine unless its address is on a local link."""


@pytest.fixture
def report(capsys):
    """Print a measured recovery time next to the test's result."""

    def _report(what, seconds):
        with capsys.disabled():
            print(f"\n    [chaos] {what}: recovered in {seconds:.1f} s", end="")

    return _report
