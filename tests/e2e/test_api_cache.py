"""The read API through nginx's microcache: stored and said so (X-Cache-Status, the access
log), a new todo visible within the TTL, and never a cookie or a CSRF token of one client
served to another (only GET /api/todos is cached; pages and POSTs never are)."""

import json
import re
import time

from tests.helpers import ADDED, add_todo, csrf_token, new_session, wait_until

TTL = 1.0  # api_cache_seconds, the deploy's default
#: nginx's cache clock has whole seconds: an entry kept TTL seconds lives between TTL and TTL + 1.
CLOCK = 1.0


def api(session):
    return session.get(f"{session.base}/api/todos", timeout=10)


def test_the_api_is_microcached_and_says_so(web, host):
    time.sleep(TTL + CLOCK + 0.5)  # whatever a test before cached has expired
    first = api(web)
    # Expired: the first request gets the old copy (STALE) while nginx refreshes it in the background.
    assert first.status_code == 200 and first.headers["X-Cache-Status"] in ("MISS", "EXPIRED", "STALE"), first.headers
    second, _ = wait_until(lambda: (r := api(web)).headers["X-Cache-Status"] == "HIT" and r, timeout=TTL + CLOCK)
    assert second.status_code == 200 and "Set-Cookie" not in second.headers
    log = json.loads(host.check_output('grep \'"uri":"/api/todos"\' /var/log/nginx/access.log | tail -1'))
    assert log["cache"] == "HIT", log


def test_a_todo_added_is_in_the_api_within_the_ttl(web):
    api(web)  # cached now
    text = add_todo(web)
    added = time.monotonic()
    wait_until(lambda: text in [t["text"] for t in api(web).json()["todos"]], timeout=TTL + CLOCK + 2)
    assert time.monotonic() - added <= TTL + CLOCK + 0.5


def test_no_client_ever_gets_another_clients_cookie_or_token(machine_address):
    """Two sessions: the API sets no cookie for either; each page carries its own session's
    token (pages are never cached), and a POST is never stored."""
    a, b = new_session(machine_address), new_session(machine_address)
    token_a, token_b = csrf_token(a), csrf_token(b)
    assert token_a != token_b and a.cookies.get("session") != b.cookies.get("session")
    for session in (a, b, a, b):
        response = api(session)
        assert "Set-Cookie" not in response.headers and "csrf" not in response.text.lower()
    for session, other in ((a, token_b), (b, token_a)):
        page = session.get(f"{session.base}/", timeout=10)
        assert "X-Cache-Status" not in page.headers
        tokens = set(re.findall(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text))
        assert other not in tokens
    text = f"cache-probe-{time.time_ns()}"
    ADDED.append(text)  # deleted after the session (the host as found)
    post = a.post(f"{a.base}/todos", data={"text": text, "csrf_token": token_a}, allow_redirects=False)
    assert post.status_code == 303 and "X-Cache-Status" not in post.headers
