"""Host tests run with testinfra over SSH: --hosts=ssh://default --ssh-config=PATH --sudo."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _route_is_local(machine_address):
    """Refuse to open SSH to the machine unless its address is on a local link."""


@pytest.fixture(autouse=True, scope="session")
def _leaves_host_as_found(leaves_host_as_found):
    """Without destructive tests in the session, the host ends as it began (tests/conftest.py)."""
