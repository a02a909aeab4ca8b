"""Helpers shared by the HTTP tests: a browser-like session against nginx on the machine."""

import re
import time
import uuid

import requests


def new_session(address):
    """A requests session for http://ADDRESS/ (the Host nginx answers to)."""
    session = requests.Session()
    session.base = f"http://{address}"
    return session


def csrf_token(session):
    """Load the list page and return its CSRF token (the session cookie goes with it)."""
    page = session.get(f"{session.base}/", timeout=10)
    page.raise_for_status()
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)


def add_todo(session, text=None):
    """Add a todo through the form; return its text."""
    text = text or f"todo-{uuid.uuid4().hex[:12]}"
    response = session.post(
        f"{session.base}/todos",
        data={"text": text, "csrf_token": csrf_token(session)},
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 303, response.text[:500]
    return text


def wait_for_http(url, timeout=60.0, **kwargs):
    """Poll ``url`` until it answers 200; return the response (seconds: timeout)."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            last = requests.get(url, timeout=3, **kwargs)
            if last.status_code == 200:
                return last
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{url} not 200 after {timeout} s: {last}")
