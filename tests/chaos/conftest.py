"""Chaos tests: kill parts of the stack on the machine and measure how it heals (marked chaos)."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _route_is_local(machine_address):
    """Refuse to touch the machine unless its address is on a local link."""
