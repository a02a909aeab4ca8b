"""Helpers shared by the machine tests: a browser-like session, the database check, bounded polling,
and the chaos tests' probes of processes."""

import json
import os
import re
import shlex
import socket
import ssl
import time
import uuid

import pytest
import requests
from requests.adapters import HTTPAdapter

#: The app's name on the machine under test (the database and role too); tests/conftest.py
#: sets it from the machine (deployed()).
APP = "todo"
#: Source address of the tests' load generator on the local network's host side: the only
#: address the local inventory exempts from the POST rate limit (scripts/machine adds it;
#: 192.168.56.1, where a browser on this box comes from, is limited like any client).
LOAD_GENERATOR = "192.168.56.2"
#: A client on this box's side that no inventory exempts from fail2ban: the ban tests' source.
OTHER_CLIENT = "192.168.56.3"
#: The machine's address (tests/conftest.py proves its route local before any test runs).
MACHINE = "192.168.56.10"


def connects(port, source=OTHER_CLIENT, address=MACHINE):
    """True when a TCP connection from ``source`` (an address on this box) to ``address``:``port``
    opens within 3 s; False when it is refused or dropped (a firewall, a fail2ban ban)."""
    try:
        socket.create_connection((address, port), timeout=3, source_address=(source, 0)).close()
        return True
    except OSError:
        return False


#: Texts of the todos add_todo() made in this session (deleted again at its end).
ADDED = []

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


class _Adapter(HTTPAdapter):
    """Connections from ``source`` (None: this box's own address), speaking to the server as
    ``name`` (TLS SNI and the certificate's name check; None: the URL's host)."""

    def __init__(self, source=None, name=None):
        self.source, self.name = source, name
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        if self.source:
            kwargs["source_address"] = (self.source, 0)
        if self.name:
            kwargs.update(server_hostname=self.name, assert_hostname=self.name)
        super().init_poolmanager(*args, **kwargs)


def new_session(address, load_generator=True, name=None):
    """A requests session for https://ADDRESS/ (the Host nginx answers to), from the load
    generator's address unless ``load_generator`` is false (then from this box's own address).
    With ``name`` (a DNS name nginx serves, e.g. an ACME certificate's), the session connects
    to ADDRESS but asks for ``name``: Host header, SNI and the certificate's name check, as a
    client that resolved ``name`` to ADDRESS would, without touching this box's resolver."""
    session = requests.Session()
    adapter = _Adapter(LOAD_GENERATOR if load_generator else None, name)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.base = f"https://{address}"
    if name:
        session.headers["Host"] = name
    # As a browser sends it (Referrer-Policy same-origin); Flask-WTF requires it on HTTPS POSTs.
    session.headers["Referer"] = f"https://{name or address}/"
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
    ADDED.append(text)
    return text


def forget_added(host, app):
    """Delete the todos add_todo() made in this session, so a tester's run leaves no data behind."""
    while ADDED:
        host.check_output(f"runuser -u postgres -- psql -d {app} -qc \"DELETE FROM todo WHERE text='{ADDED.pop()}'\"")


#: GET a URL on the server itself (its loopback services) with Debian's python3: no curl there.
LOCAL_GET = (
    "python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5)"
    ".read().decode())' "
)


def local_get(host, url):
    """The body of GET ``url`` made on the machine (e.g. http://127.0.0.1:9090/...); raises on an error status."""
    return host.check_output(LOCAL_GET + f"'{url}'")


#: A sample line of Prometheus's text exposition format: name{labels} value (labels optional).
EXPOSITION_SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*",?)*\})? -?[0-9.e+]+$'
)


def assert_exposition(lines):
    """Each of ``lines`` is a HELP or TYPE comment of a todo_* metric or a sample (the status textfile)."""
    for line in lines:
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) todo_[a-z_]+ \S", line), line
        else:
            assert EXPOSITION_SAMPLE.match(line), line


def access_log(host, marker):
    """nginx's access log line (one JSON object, log_format todo_json) of the request whose URI
    holds ``marker``, parsed; the last such line."""
    line = host.check_output(f"grep -h {marker} /var/log/nginx/access.log | tail -1")
    return json.loads(line)


def stored(host, text):
    """How many todos hold ``text``, read from the database on the machine (not from a page)."""
    return int(query(host, f"SELECT count(*) FROM todo WHERE text='{text}'"))


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


# --- Processes on the machine (chaos and release tests) ------------------------------------------


def main_pid(host, unit):
    """The main PID of a systemd unit on the machine (0 when it is not running)."""
    return int(host.check_output(f"systemctl show -P MainPID {unit}"))


def instance_pids(host, instances):
    """{instance: gunicorn master PID} for the instances supervisor reports RUNNING."""
    pids = {}
    for line in host.check_output(f"supervisorctl status {' '.join(instances)} || true").splitlines():
        name, state, *rest = line.split()
        if state == "RUNNING":
            pids[name] = int(re.search(r"pid (\d+)", line).group(1))
    return pids


def query(host, sql):
    """Run ``sql`` in the app's database as postgres; return its unaligned output."""
    return host.check_output(f'runuser -u postgres -- psql -d {APP} -Atc "{sql}"')


#: in_cgroup's exit status when the process could not join the unit's cgroup.
NOT_IN_CGROUP = 99
#: connect()'s exit status when the connection is refused or times out (a filter's drop is a timeout).
NOT_CONNECTED = 3


def in_cgroup(host, unit, command):
    """Run ``command`` (a shell string) as root inside ``unit``'s cgroup (cgroup v2); its exit status,
    or NOT_IN_CGROUP when joining the cgroup failed."""
    procs = f"/sys/fs/cgroup/system.slice/{unit}/cgroup.procs"
    inner = f"echo $$ > {procs} || exit {NOT_IN_CGROUP}; exec {command}"
    return host.run(f"timeout 30 sh -c {shlex.quote(inner)}").rc


def connect(address, port):
    """A command that exits 0 when a TCP connection to ``address``:``port`` is made within 3 s, and
    NOT_CONNECTED when it is refused or times out (anything else is another exit status)."""
    script = (f"import socket, sys\ntry: socket.create_connection(('{address}', {port}), 3)\n"
              f"except OSError: sys.exit({NOT_CONNECTED})")  # fmt: skip
    return f"python3 -c {shlex.quote(script)}"


def raw_request(target, headers=None, address=MACHINE):
    """(status, body) of ``GET target`` sent over HTTPS to ``address`` exactly as written, from the load
    generator's address: requests and urllib3 normalise paths before they send (``/%6detrics`` becomes
    ``/metrics``, ``/a/../b`` becomes ``/b``), so a test of how nginx treats odd paths sends its own
    request line. The certificate is checked against REQUESTS_CA_BUNDLE (tests/conftest.py)."""
    context = ssl.create_default_context(cafile=os.environ["REQUESTS_CA_BUNDLE"])
    context.check_hostname = False
    lines = [f"GET {target} HTTP/1.1", f"Host: {address}", "Connection: close",
             *(f"{name}: {value}" for name, value in (headers or {}).items())]  # fmt: skip
    with (
        socket.create_connection((address, 443), timeout=10, source_address=(LOAD_GENERATOR, 0)) as raw,
        context.wrap_socket(raw) as tls,
    ):
        tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")
