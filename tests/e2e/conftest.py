"""End-to-end tests: HTTPS from this box through nginx on the machine."""

import re

import pytest

from tests.helpers import new_session


@pytest.fixture
def web(machine_address):
    """A browser-like session against the machine's site."""
    return new_session(machine_address)


@pytest.fixture
def static(web):
    """The URL prefix of static files the list page names: https://ADDRESS/static/<release>."""
    page = web.get(f"{web.base}/", timeout=10).text
    return web.base + re.search(r'href="(/static/[^/"]+)/style\.css"', page).group(1)
