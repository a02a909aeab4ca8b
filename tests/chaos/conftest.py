"""Chaos tests: kill parts of the stack on the machine and measure how it heals (marked chaos)."""

import pytest

from tests.helpers import add_todo, new_session, stored


@pytest.fixture
def acknowledged(host, machine_address):
    """A todo acknowledged with a 2xx before the fault; checked in the database after it."""
    text = add_todo(new_session(machine_address))
    yield text
    assert stored(host, text) == 1, f"todo {text!r} lost"
