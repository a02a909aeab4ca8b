"""Following a request and counting requests: nginx's request id in its JSON access log and in
the app's log line, and the app's request counter summed over every worker of every instance
(prometheus_client's multiprocess mode), read through nginx's loopback metrics server."""

import re
import uuid

import pytest

from tests.helpers import access_log, local_get, raw_request, wait_until

REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def metric(host, instance, name, **labels):
    """The value of one sample of ``name`` with ``labels`` on ``instance``'s /metrics (0 when absent)."""
    text = local_get(host, f"http://127.0.0.1:9180/instances/{instance}/metrics")
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.split("{")[0] == name and ",".join(sorted(sample[len(name) + 1 : -1].split(","))) == wanted:
            return float(value)
    return 0.0


def page_count(host, instances):
    """GET / answered 200, summed over the instances."""
    return sum(
        metric(host, name, "todo_http_requests_total", endpoint="todos.index", method="GET", status="200")
        for name in instances
    )


def test_a_request_id_follows_the_request_from_nginx_to_the_app(web, host, app_name):
    marker = uuid.uuid4().hex
    web.get(f"{web.base}/?{marker}", timeout=10).raise_for_status()
    line = access_log(host, marker)
    assert REQUEST_ID.match(line["request_id"]), line
    assert line["upstream"].startswith(f"unix:/run/{app_name}/"), line
    app_line = host.check_output(f"grep -h {marker} /var/log/{app_name}/{app_name}-*.log")
    assert f"rid={line['request_id']} " in app_line, app_line


def test_every_request_gets_its_own_id(web, host):
    markers = [uuid.uuid4().hex for _ in range(3)]
    for marker in markers:
        web.get(f"{web.base}/version?{marker}", timeout=10).raise_for_status()
    assert len({access_log(host, marker)["request_id"] for marker in markers}) == 3


def test_metrics_are_not_served_to_the_public(web):
    assert web.get(f"{web.base}/metrics", timeout=10).status_code == 404


def test_the_page_counter_goes_up_by_each_request_summed_over_every_worker_and_instance(web, host, instances):
    before = page_count(host, instances)
    for _ in range(100):
        web.get(f"{web.base}/", timeout=10).raise_for_status()
    assert page_count(host, instances) - before == 100


def test_latency_is_recorded_per_endpoint(web, host, instances):
    def observed():
        return sum(
            metric(host, name, "todo_http_request_duration_seconds_count", endpoint="todos.version")
            for name in instances
        )

    before = observed()
    for _ in range(10):
        web.get(f"{web.base}/version", timeout=10).raise_for_status()
    assert observed() - before == 10


def test_scrapes_of_metrics_leave_no_line_in_the_app_log(host, instances, app_name):
    """Prometheus's scrapes every 10 s would bury the requests people make (gunicorn.conf.py's Logger)."""
    name = instances[0]
    log = f"/var/log/{app_name}/{name}.log"
    size = host.file(log).size
    for _ in range(3):
        local_get(host, f"http://127.0.0.1:9180/instances/{name}/metrics")
    # A request after the scrapes, straight to the instance: once its line is in the log, any
    # scrape's line would be too (supervisor writes the instance's output in order).
    marker = uuid.uuid4().hex
    host.check_output(f"{UNIX_GET} /run/{app_name}/{name}.sock /healthz?{marker}")
    written, _ = wait_until(lambda: marker in (text := host.check_output(f"tail -c +{size + 1} {log}")) and text, 10)
    assert "GET /metrics" not in written, written


#: GET PATH on a unix socket SOCK, on the machine: prints the status, then the body.
UNIX_GET = (
    "python3 -c 'import http.client, socket, sys\n"
    "class C(http.client.HTTPConnection):\n"
    " def connect(self):\n"
    "  self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])\n"
    'c = C("localhost"); c.request("GET", sys.argv[2], headers=dict(h.split(": ", 1) for h in sys.argv[3:]))\n'
    "r = c.getresponse(); print(r.status); print(r.read().decode())'"
)


def test_the_app_serves_metrics_only_to_nginxs_metrics_server(host, app_name, instances):
    """Defence behind nginx's 404: the app answers /metrics only with X-Metrics-Scrape: 1, which only
    the loopback metrics server sends (the public site clears it)."""
    sock = f"/run/{app_name}/{instances[0]}.sock"
    assert host.check_output(f"{UNIX_GET} {sock} /metrics").splitlines()[0] == "404"
    scraped = host.check_output(f"{UNIX_GET} {sock} /metrics 'X-Metrics-Scrape: 1'")
    assert scraped.splitlines()[0] == "200" and "todo_http_requests_total" in scraped


@pytest.mark.parametrize("path", ["/metrics/", "//metrics", "/%6detrics", "/metrics?format=prometheus", "/./metrics"])
def test_metrics_are_not_served_to_the_public_under_other_spellings(path):
    """Each spelling reaches nginx as written (a raw request line: requests would normalise it)."""
    status, body = raw_request(path, {"X-Metrics-Scrape": "1"})
    assert status == 404 and "todo_http" not in body, (status, body[:300])
