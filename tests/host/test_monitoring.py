"""Monitoring on the host: Prometheus and Debian's exporters on the loopback only, every target
scraped, mtail counting nginx's access log (every app's request metrics), the stack's alert rules
loaded and passing their unit tests (promtool, Prometheus's own judge), and the status tool's
metrics fresh."""

import json
import re
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import LOAD_GENERATOR, LOCAL_GET, connects, local_get, wait_until

REPO = Path(__file__).resolve().parents[2]
#: Debian package: its loopback port (deploy/tasks/monitoring.py).
EXPORTERS = {
    "prometheus": 9090,
    "prometheus-node-exporter": 9100,
    "prometheus-nginx-exporter": 9113,
    "prometheus-postgres-exporter": 9187,
    "mtail": 3903,
}
#: nginx's loopback server for Prometheus (the metrics_port setting's default).
METRICS_PORT = 9180
LOOPBACK_PORTS = [*EXPORTERS.values(), METRICS_PORT]


@pytest.mark.parametrize("package", EXPORTERS)
def test_monitoring_service_installed_running_and_enabled(host, package):
    assert host.package(package).is_installed
    service = host.service(package)
    assert service.is_running and service.is_enabled


@pytest.mark.parametrize("port", LOOPBACK_PORTS)
def test_monitoring_listens_on_the_loopback_only(host, port):
    listening = {s for s in host.socket.get_listening_sockets() if s.endswith(f":{port}")}
    assert listening == {f"tcp://127.0.0.1:{port}"}, listening


@pytest.mark.parametrize("port", LOOPBACK_PORTS)
def test_monitoring_ports_refused_from_outside(port):
    assert not connects(port), f"port {port} answers from this box"
    assert not connects(port, source=LOAD_GENERATOR)


@pytest.mark.parametrize("port", EXPORTERS.values())
def test_exporters_answer_on_the_server_itself(host, port):
    path = "/metrics"
    assert "# TYPE" in local_get(host, f"http://127.0.0.1:{port}{path}")


def test_nginx_metrics_server_serves_stub_status_and_each_instance(host, instances):
    assert "Active connections" in local_get(host, f"http://127.0.0.1:{METRICS_PORT}/stub_status")
    for name in instances:
        text = local_get(host, f"http://127.0.0.1:{METRICS_PORT}/instances/{name}/metrics")
        assert "todo_http_requests_total" in text, name
    assert host.run(LOCAL_GET + f"http://127.0.0.1:{METRICS_PORT}/").rc != 0  # nothing else is served there


def web_requests(host):
    """{(method, status, served_by): count} of mtail's todo_web_requests_total on the server."""
    text = local_get(host, "http://127.0.0.1:3903/metrics")
    sample = r'^todo_web_requests_total\{method="(\w+)",served_by="(\w+)",status="(\d+)"\} (\d+)$'
    found = re.findall(sample, text, re.M)
    return {(method, status, by): int(count) for method, by, status, count in found}


def test_mtail_counts_what_nginx_passed_to_the_app_and_what_it_answered_itself(host, machine_address):
    before = web_requests(host)
    assert requests.get(f"https://{machine_address}/", timeout=10).status_code == 200
    redirect = requests.get(f"http://{machine_address}/", timeout=10, allow_redirects=False)
    assert redirect.status_code == 301  # nginx's own answer: the redirect to HTTPS

    def grew(key):
        return web_requests(host).get(key, 0) > before.get(key, 0)

    # mtail polls the log every 250 ms.
    wait_until(lambda: grew(("GET", "200", "app")) and grew(("GET", "301", "nginx")), timeout=10)


#: Access log lines in nginx's todo_json format (nginx/nginx.conf.j2) for the program's own checks:
#: a client forging the separators in its URI and User-Agent, a method outside HTTP's usual ones,
#: an answer under a millisecond (logged as 0.000), and nginx's 502 with no instance answering.
FORGED = (
    '{"time":"2026-12-08T02:00:00+00:00","msec":"1.0","remote_addr":"192.0.2.1","request_id":"a","host":"x",'
    '"method":"GET","uri":"/?\\"upstream\\":\\"x","protocol":"HTTP/1.1","status":"200","bytes":"1","referer":"",'
    '"user_agent":"\\",\\"upstream\\":\\"\\",\\"upstream_status\\":\\"\\",\\"rt\\":\\"9.000",'
    '"upstream":"unix:/run/app/app-0.sock","upstream_status":"200","rt":"0.003","urt":"0.003","cache":""}'
)
OTHER_METHOD = (
    '{"time":"2026-12-08T02:00:00+00:00","msec":"1.0","remote_addr":"192.0.2.1","request_id":"b","host":"x",'
    '"method":"FOO","uri":"/static/a.css","protocol":"HTTP/1.1","status":"405","bytes":"1","referer":"",'
    '"user_agent":"","upstream":"","upstream_status":"","rt":"0.000","urt":"","cache":""}'
)
BAD_GATEWAY = (
    '{"time":"2026-12-08T02:00:00+00:00","msec":"1.0","remote_addr":"192.0.2.1","request_id":"c","host":"x",'
    '"method":"POST","uri":"/","protocol":"HTTP/1.1","status":"502","bytes":"1","referer":"","user_agent":"",'
    '"upstream":"unix:/run/app/app-0.sock, unix:/run/app/app-1.sock","upstream_status":"502, 502","rt":"1.500",'
    '"urt":"0.001, 0.002","cache":""}'
)


def test_the_mtail_program_as_deployed_counts_lines_as_documented(host, app_name):
    """monitoring/web.mtail, as deployed, run by the server's mtail once over lines written here."""
    scratch = host.check_output("mktemp -d")
    try:
        host.check_output(f"cat > {scratch}/access.log <<'LOG_END'\n{FORGED}\n{OTHER_METHOD}\n{BAD_GATEWAY}\nLOG_END")
        host.check_output(f"mkdir {scratch}/progs && cp /etc/mtail/{app_name}-web.mtail {scratch}/progs/")
        text = host.check_output(
            f"mtail --one_shot --one_shot_format prometheus --emit_prog_label=false --address 127.0.0.1 --port 0 "
            f"--progs {scratch}/progs --logs {scratch}/access.log 2>/dev/null"
        )
    finally:
        host.run(f"rm -rf {scratch}")
    samples = dict(re.findall(r"^(todo_web_\S+) (\S+)$", text, re.M))
    assert samples['todo_web_requests_total{method="GET",served_by="app",status="200"}'] == "1"
    assert samples['todo_web_requests_total{method="other",served_by="nginx",status="405"}'] == "1"
    assert samples['todo_web_requests_total{method="POST",served_by="app",status="502"}'] == "1"
    assert len([k for k in samples if k.startswith("todo_web_requests_total")]) == 3
    # The forged rt (9 s) is not read; under a millisecond is 0.0005 s, in the first bucket.
    assert float(samples['todo_web_request_duration_seconds_sum{served_by="app"}']) == pytest.approx(1.503)
    assert samples['todo_web_request_duration_seconds_bucket{served_by="app",le="1"}'] == "1"
    assert samples['todo_web_request_duration_seconds_bucket{served_by="nginx",le="0.005"}'] == "1"


def prometheus(host, path):
    """Prometheus's HTTP API on the server: the ``data`` of GET /api/v1/<path>."""
    return json.loads(local_get(host, f"http://127.0.0.1:9090/api/v1/{path}"))["data"]


def test_prometheus_scrapes_every_target_and_every_instance(host, instances):
    def health():
        return {
            (t["labels"]["job"], t["labels"]["instance"]): t["health"]
            for t in prometheus(host, "targets")["activeTargets"]
        }  # noqa: E501

    found, _ = wait_until(lambda: (h := health()) and set(h.values()) == {"up"} and h, timeout=30)
    assert {job for job, _ in found} == {"prometheus", "node", "nginx", "postgres", "web", "todo"}
    assert {name for job, name in found if job == "todo"} == set(instances)


def test_prometheus_reads_postgresql_and_the_status_metrics(host, instances):
    def value(query):
        result = prometheus(host, f"query?query={query}")["result"]
        return {r["metric"].get("name"): float(r["value"][1]) for r in result}

    wait_until(lambda: value("pg_up") == {None: 1.0}, timeout=30)
    # Within the status timer's 15 s, a scrape's 10 s and a margin (an instance may have just restarted).
    wait_until(lambda: value("todo_instance_up") == {name: 1.0 for name in instances}, timeout=40)


def test_alert_rules_loaded_and_none_firing_on_a_healthy_host(host):
    def rules():
        groups = prometheus(host, "rules")["groups"]
        return [r for g in groups for r in g["rules"] if r["type"] == "alerting"]

    in_repo = re.findall(r"^\s+- alert: (\w+)$", (REPO / "monitoring" / "alerts.yml").read_text(), re.M)
    assert sorted(r["name"] for r in rules()) == sorted(in_repo)
    # Rules just reloaded (a provisioning run) are "unknown" until their first evaluation (10 s).
    wait_until(lambda: all(r["health"] == "ok" for r in rules()), timeout=25)
    assert [a for a in prometheus(host, "alerts")["alerts"] if a["state"] == "firing"] == []


def test_promtool_checks_the_config_and_the_rules(host, app_name):
    host.check_output("promtool check config /etc/prometheus/prometheus.yml")
    host.check_output(f"promtool check rules /etc/prometheus/{app_name}-alerts.yml")


def test_the_deployed_rules_pass_their_unit_tests(host, app_name):
    """monitoring/alerts.test.yml (promtool test rules) against the rules as deployed."""
    tests = (REPO / "monitoring" / "alerts.test.yml").read_text()
    scratch = host.check_output("mktemp -d")
    try:
        host.check_output(f"cp /etc/prometheus/{app_name}-alerts.yml {scratch}/alerts.yml")
        host.check_output(f"cat > {scratch}/alerts.test.yml <<'TESTS_END'\n{tests}\nTESTS_END")
        result = host.run(f"cd {scratch} && promtool test rules alerts.test.yml")
        assert result.rc == 0, result.stdout + result.stderr
    finally:
        host.run(f"rm -rf {scratch}")


def test_status_metrics_are_fresh(host, app_name):
    """The status tool's textfile is rewritten every 15 s by its timer."""
    assert host.service(f"{app_name}-status-metrics.timer").is_enabled
    path = f"/var/lib/prometheus/node-exporter/{app_name}-status.prom"
    age = time.time() - host.file(path).mtime.timestamp()
    assert age < 60, f"{path} is {age:.0f} s old"
    assert oct(host.file(path).mode) == "0o644" and host.file(path).user == "root"
