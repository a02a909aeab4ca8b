"""Host tests run with testinfra over SSH: --hosts=ssh://default --ssh-config=PATH --sudo."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _route_is_local(machine_address):
    """Refuse to open SSH to the machine unless its address is on a local link."""
