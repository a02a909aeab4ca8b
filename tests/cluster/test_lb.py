"""The load balancer over two app hosts: one todo list whichever host answers, one secret key (a
form from one app host posts through the other), app hosts that admit the load balancer only,
static files cached on the load balancer, and an app host lost and back under load with no
failed GET and no POST applied twice."""

import json
import re
import time

import pytest

from tests import helpers
from tests.cluster.conftest import ADDRESSES, APP_HOSTS, APP_PORT, LB, app_request, run
from tests.helpers import LOAD_GENERATOR, OTHER_CLIENT, add_todo, connects, new_session, wait_until
from tests.load import Load

CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def test_a_todo_added_through_the_load_balancer_is_listed_by_every_app_host(lb, apps, db_host):
    text = add_todo(new_session(LB))
    try:
        for name in APP_HOSTS:
            status, _, page = app_request(lb, name)
            assert status == 200 and text in page, f"{name} does not list {text}"
    finally:
        helpers.forget_added(db_host, "todo")


def test_a_form_fetched_from_one_app_host_posts_through_the_other(lb, apps, db_host):
    """Both hosts sign sessions with the one SECRET_KEY the deploy copied from the database host."""
    hashes = {name: apps[name].check_output("sha256sum < /etc/todo/todo.env") for name in APP_HOSTS}
    assert len(set(hashes.values())) == 1, hashes
    status, cookie, page = app_request(lb, "app1")
    assert status == 200 and cookie.startswith("session="), (status, cookie)
    text = f"cross-host-{time.time_ns()}"
    helpers.ADDED.extend([text, f"{text}-x"])  # deleted at the end, as add_todo's are
    body = f"text={text}&csrf_token={CSRF.search(page).group(1)}"
    try:
        status, _, answer = app_request(lb, "app2", "POST", "/todos", body, cookie)
        assert status == 303, answer[:500]
        # The check is real: the same form without app1's session cookie is refused by app2.
        status, _, _ = app_request(lb, "app2", "POST", "/todos", body.replace(text, text + "-x"))
        assert status == 400
        stored = helpers.query(db_host, f"SELECT text FROM todo WHERE text LIKE '{text}%'")
        assert stored.split() == [text]
    finally:
        helpers.forget_added(db_host, "todo")


def test_the_app_hosts_admit_the_load_balancer_only(lb, apps, db_host):
    for name, host in apps.items():
        address = ADDRESSES[name]
        listening = host.run("ss -Htln | awk '{print $4}'").stdout.split()
        assert f"{address}:{APP_PORT}" in listening and not [a for a in listening if a.endswith(f"*:{APP_PORT}")]
        # Nothing but SSH on a public address: gunicorn is on unix sockets only.
        public = [a for a in listening if not a.startswith(("127.", "[::1]", f"{address}:{APP_PORT}"))]
        assert {a.rsplit(":", 1)[1] for a in public} == {"22"}, listening
        for source in (LOAD_GENERATOR, OTHER_CLIENT):
            assert not connects(APP_PORT, source=source, address=address), f"{source} reached {name}'s nginx"
        assert not connects(80, source=LOAD_GENERATOR, address=address) and not connects(443, address=address)
        probe = db_host.run(f"timeout 4 bash -c '</dev/tcp/{address}/{APP_PORT}'")
        assert probe.rc != 0, f"the database host reached {name}'s nginx"
        assert app_request(lb, name, path="/healthz")[0] == 200  # and the load balancer does
        # nginx's own allow/deny, behind the firewall: the host itself (its private address) is denied.
        own = host.run(helpers.LOCAL_GET + f"http://{address}:{APP_PORT}/healthz")
        assert own.rc != 0 and "HTTP Error 403" in own.stderr, own


def test_static_files_are_cached_on_the_load_balancer_per_encoding(lb, apps):
    session = new_session(LB)
    css = re.search(r'href="(/static/[^"]+\.css)"', session.get(f"{session.base}/", timeout=10).text).group(1)
    seen = {}
    for encoding in ("gzip", "br", "identity"):
        answers = [session.get(f"{session.base}{css}", headers={"Accept-Encoding": encoding}, timeout=10, stream=True)
                   for _ in range(2)]  # fmt: skip
        assert all(a.status_code == 200 for a in answers)
        hit = answers[1]
        body = len(hit.raw.read(decode_content=False))  # as sent: requests would decompress gzip
        seen[encoding] = (hit.headers["X-Cache-Status"], hit.headers.get("Content-Encoding"), body)
        assert "immutable" in answers[1].headers["Cache-Control"]
        assert not helpers.missing_security_headers(answers[1])
    assert {k: v[:2] for k, v in seen.items()} == {"gzip": ("HIT", "gzip"), "br": ("HIT", "br"),
                                                   "identity": ("HIT", None)}, seen  # fmt: skip
    # The app hosts' precompressed copies, byte for byte (not the load balancer's own compression).
    path = "/srv/todo/releases/" + css.split("/")[2] + "/todo/static/" + css.split("/", 3)[3]
    for encoding, suffix in (("gzip", ".gz"), ("br", ".br"), ("identity", "")):
        assert seen[encoding][2] == int(apps["app1"].check_output(f"stat -c %s {path}{suffix}")), (encoding, seen)


def app_log_since(host, since):
    """Requests in the app host's nginx access log at or after ``since`` (epoch seconds)."""
    lines = host.check_output("tail -n 2000 /var/log/nginx/access.log").splitlines()
    return [e for e in map(json.loads, lines) if float(e["msec"]) >= since]


@pytest.mark.destructive
def test_an_app_host_stopped_under_load_fails_no_get_applies_no_post_twice_and_rejoins(lb, apps, db_host, report):
    """app2's machine is shut down cleanly while 8 clients browse and post, then started again."""
    started = None
    with Load(LB, clients=8, max_seconds=150) as load:
        time.sleep(3)
        code, out = run("scripts/machine", "--name", "app2", "stop", timeout=120)
        assert code == 0, out
        time.sleep(5)
        code, out = run("scripts/machine", "--name", "app2", "start", timeout=300)
        assert code == 0, out
        # Back: its nginx answers the load balancer with an open instance.
        assert wait_until(lambda: app_request(lb, "app2", path="/healthz")[0] == 200, timeout=60)
        started = time.time()
        assert wait_until(lambda: any(e["uri"] == "/" for e in app_log_since(apps["app2"], started)), timeout=30)
        rejoined = time.time() - started
        time.sleep(2)
    try:
        report("load", load.summary())
        report("app2 back in the rotation after its return (s)", f"{rejoined:.1f}")
        gets = [f for f in load.failures if "POST" not in f[1]]
        assert not gets, gets[:5]
        twice = f"SELECT text, count(*) FROM todo WHERE text LIKE '{load.tag}-%' GROUP BY text HAVING count(*) > 1"
        counts = helpers.query(db_host, twice)
        assert not counts, f"POSTs applied twice: {counts}"
        assert set(load.acknowledged) <= load.stored(db_host)
        assert rejoined <= 10
    finally:
        load.forget(db_host)
