"""Helpers shared by the machine tests: a browser-like session, the database check, bounded polling."""

import re
import time
import uuid

import pytest
import requests

#: What nginx adds to every response (nginx/snippets/todo/security-headers.conf).
SECURITY_HEADERS = {
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'; upgrade-insecure-requests",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "X-Permitted-Cross-Domain-Policies": "none",
}


def missing_security_headers(response):
    """{header: what was sent} for each security header that is absent or has another value."""
    return {name: response.headers.get(name) for name, value in SECURITY_HEADERS.items()
            if response.headers.get(name) != value}  # fmt: skip


def new_session(address):
    """A requests session for https://ADDRESS/ (the Host nginx answers to)."""
    session = requests.Session()
    session.base = f"https://{address}"
    # As a browser sends it (Referrer-Policy same-origin); Flask-WTF requires it on HTTPS POSTs.
    session.headers["Referer"] = f"{session.base}/"
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


def stored(host, text):
    """How many todos hold ``text``, read from the database on the machine (not from a page)."""
    return int(
        host.check_output(f"runuser -u postgres -- psql -d todo -Atc \"SELECT count(*) FROM todo WHERE text='{text}'\"")
    )


def wait_until(predicate, timeout, interval=0.2):
    """Poll ``predicate`` until it returns a truthy value; return (value, seconds taken).

    A failed command (testinfra), a dropped SSH connection or a refused HTTP request
    counts as "not yet". Fails the test after ``timeout`` seconds.
    """
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


def wait_for_http(url, timeout=60.0, **kwargs):
    """Poll ``url`` until it answers 200; return the response (seconds: timeout)."""

    def answered():
        response = requests.get(url, timeout=3, **kwargs)
        return response if response.status_code == 200 else None

    return wait_until(answered, timeout, interval=0.5)[0]
