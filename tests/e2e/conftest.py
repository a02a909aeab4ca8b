"""End-to-end tests: HTTP from this box through nginx on the machine."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _route_is_local(machine_address):
    """Refuse to send HTTP to the machine unless its address is on a local link."""
