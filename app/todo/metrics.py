"""Request metrics for Prometheus: a count and a latency histogram per endpoint.

On the server the stack's gunicorn.conf.py sets ``PROMETHEUS_MULTIPROC_DIR`` (one directory per instance,
emptied when the instance starts), so every worker of the instance writes its values there and
``GET /metrics`` on any worker answers the sum over all of them (prometheus_client's
multiprocess mode: https://prometheus.github.io/client_python/multiprocess/). Prometheus
scrapes each instance through nginx's loopback-only metrics server; the public site answers
404 for /metrics, and so does the app for any request that did not come through that server.
Without the variable (tests, a development server) nothing is recorded and
/metrics does not exist.

Metrics:
- ``todo_http_requests_total{endpoint, method, status}``: requests answered (a counter);
- ``todo_http_request_duration_seconds{endpoint}``: seconds from the request reaching the app
  to its response (a histogram, prometheus_client's default buckets 5 ms to 10 s).
``endpoint`` is Flask's endpoint name (``todos.index``, ``static``...), ``none`` for a URL no
route matches, so the label has a bounded number of values whatever clients ask for.
"""

import os
import time

from flask import Response, abort, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

# Not registered anywhere (registry=None): in multiprocess mode their values live in the
# directory's files, which the collector of GET /metrics reads.
REQUESTS = Counter(
    "todo_http_requests", "HTTP requests answered by the app.", ["endpoint", "method", "status"], registry=None
)
LATENCY = Histogram(
    "todo_http_request_duration_seconds", "Seconds the app took to answer a request.", ["endpoint"], registry=None
)


def _started():
    g.metrics_started = time.perf_counter()


def _record(response):
    endpoint = request.endpoint or "none"
    REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
    LATENCY.labels(endpoint).observe(time.perf_counter() - g.get("metrics_started", time.perf_counter()))
    return response


def _metrics():
    """Every worker's values of this instance, in Prometheus's text format; 404 unless nginx's
    loopback metrics server sent the request (X-Metrics-Scrape: 1, which the public site clears)."""
    if request.headers.get("X-Metrics-Scrape") != "1":
        abort(404)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app):
    """Record every request and serve GET /metrics, when PROMETHEUS_MULTIPROC_DIR is set.

    Call it before anything else registers a before_request hook (the CSRF check), so that
    the clock starts first and a request refused there is timed too.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    app.before_request(_started)
    app.after_request(_record)
    app.add_url_rule("/metrics", "metrics", _metrics)
