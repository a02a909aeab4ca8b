"""A bounded load through nginx: clients that browse and add todos while something happens.

Each client is a thread with its own session (cookie, CSRF token) that loops: GET the
list, GET the stylesheet the page names, POST a new todo. It counts every answer by
status and every socket error, and remembers the todos whose POST was acknowledged
(303, the redirect after a POST), so a test can check the database for each of them.
The load stops by itself after ``max_seconds`` or ``max_requests``, whichever comes first.

Like a browser, a client sends a request again, once, when the kept-alive connection it
reused was closed before any byte of an answer came back (nginx closes its idle keep-alive
connections when it reloads, racing a request already on its way: RFC 9112 9.3.1; Chromium
and Firefox retry such a request, POSTs included, since the server never read it). These
are counted (``retried``) and shown in the summary; any other error is a failure.
"""

import collections
import re
import threading
import time
import uuid

import requests

from tests import helpers

STYLESHEET = re.compile(r'href="(/static/[^"]+\.css)"')


class Load:
    """``clients`` concurrent clients against https://ADDRESS/ (use as a context manager); with
    ``name``, asking for that DNS name there (helpers.new_session)."""

    def __init__(self, address, clients=20, max_seconds=180.0, max_requests=50_000, name=None):
        self.address, self.base, self.name = address, f"https://{address}", name
        self.clients = clients
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.tag = f"load-{uuid.uuid4().hex[:8]}"
        self.statuses = collections.Counter()
        self.failures = []  # (what, detail): non-2xx/3xx answers and socket errors
        self.acknowledged = []  # texts of todos whose POST got its 303
        self.releases = collections.Counter()  # /static/<release>/ seen in pages
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._count = 0
        self.retried = 0  # requests sent again after a reused connection closed unanswered

    def __enter__(self):
        self.started = time.monotonic()
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.seconds = time.monotonic() - self.started

    @property
    def requests(self):
        return sum(self.statuses.values()) + len([f for f in self.failures if f[0] == "error"])

    def summary(self):
        """One line for the test report."""
        return (
            f"{self.requests} requests in {self.seconds:.1f} s by {self.clients} clients: "
            f"statuses {dict(self.statuses)}, {len(self.failures)} failures, "
            f"{self.retried} sent again after a keep-alive close, "
            f"{len(self.acknowledged)} todos acknowledged"
        )

    def _go_on(self):
        with self._lock:
            self._count += 1
            over = self._count > self.max_requests or time.monotonic() - self.started > self.max_seconds
        return not self._stop.is_set() and not over

    def _record(self, what, response=None, error=None, ok=(200,)):
        with self._lock:
            if error is not None:
                self.failures.append(("error", f"{what}: {type(error).__name__}: {error}"))
                return False
            self.statuses[response.status_code] += 1
            if response.status_code not in ok:
                self.failures.append((response.status_code, f"{what}: {response.text[:200]}"))
                return False
            return True

    def _send(self, session, method, url, **kwargs):
        """``session.request``, sent once more if the connection closed before any answer."""
        try:
            return session.request(method, url, timeout=10, **kwargs)
        except requests.ConnectionError as exc:
            if "RemoteDisconnected" not in str(exc):
                raise
            with self._lock:
                self.retried += 1
            return session.request(method, url, timeout=10, **kwargs)

    def _client(self, n):
        session = helpers.new_session(self.address, name=self.name)
        try:
            token = helpers.csrf_token(session)
        except (requests.RequestException, AttributeError) as exc:
            self._record("first GET /", error=exc)
            return
        i = 0
        while self._go_on():
            try:
                page = self._send(session, "GET", f"{self.base}/")
            except requests.RequestException as exc:
                self._record("GET /", error=exc)
                continue
            if self._record("GET /", page):
                css = STYLESHEET.search(page.text)
                if css:
                    with self._lock:
                        self.releases[css.group(1).split("/")[2]] += 1
                    try:
                        self._record("GET css", self._send(session, "GET", f"{self.base}{css.group(1)}"))
                    except requests.RequestException as exc:
                        self._record("GET css", error=exc)
            text = f"{self.tag}-{n}-{i}"
            i += 1
            try:
                form = {"text": text, "csrf_token": token}
                post = self._send(session, "POST", f"{self.base}/todos", data=form, allow_redirects=False)
            except requests.RequestException as exc:
                self._record("POST /todos", error=exc)
                continue
            if self._record("POST /todos", post, ok=(303,)):
                with self._lock:
                    self.acknowledged.append(text)

    def stored(self, host):
        """Texts of this load's todos that are in the database on the machine."""
        return set(helpers.query(host, f"SELECT text FROM todo WHERE text LIKE '{self.tag}-%'").split())

    def forget(self, host):
        """Delete this load's todos (the list page lists every todo; keep it small for the next load)."""
        sql = f"DELETE FROM todo WHERE text LIKE '{self.tag}-%'"
        host.check_output(f'runuser -u postgres -- psql -d {helpers.APP} -qc "{sql}"')


class PathsLoad(Load):
    """A bounded load of GETs for any app: each of ``clients`` clients GETs ``paths`` in turn through
    nginx (no todos, no CSRF), until stopped, ``max_seconds`` or ``max_requests``. A 200 is an
    answer; anything else, or a socket error, a failure (with the same single retry of a request
    whose kept-alive connection closed unanswered as Load's)."""

    def __init__(self, address, paths, clients=10, max_seconds=180.0, max_requests=50_000, name=None):
        super().__init__(address, clients=clients, max_seconds=max_seconds, max_requests=max_requests, name=name)
        self.paths = list(paths)

    def _client(self, n):
        session = helpers.new_session(self.address, name=self.name)
        i = n
        while self._go_on():
            path = self.paths[i % len(self.paths)]
            i += 1
            try:
                self._record(f"GET {path}", self._send(session, "GET", f"{self.base}{path}"))
            except requests.RequestException as exc:
                self._record(f"GET {path}", error=exc)
