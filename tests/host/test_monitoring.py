"""Monitoring on the host: Prometheus and Debian's exporters on the loopback only, every target
scraped, the stack's alert rules loaded and passing their unit tests (promtool, Prometheus's own
judge), and the status tool's metrics fresh."""

import json
import re
import time
from pathlib import Path

import pytest

from tests.helpers import LOAD_GENERATOR, LOCAL_GET, connects, local_get, wait_until

REPO = Path(__file__).resolve().parents[2]
#: Debian package: its loopback port (deploy/tasks/monitoring.py).
EXPORTERS = {
    "prometheus": 9090,
    "prometheus-node-exporter": 9100,
    "prometheus-nginx-exporter": 9113,
    "prometheus-postgres-exporter": 9187,
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
    assert {job for job, _ in found} == {"prometheus", "node", "nginx", "postgres", "todo"}
    assert {name for job, name in found if job == "todo"} == set(instances)


def test_prometheus_reads_postgresql_and_the_status_metrics(host, instances):
    def value(query):
        result = prometheus(host, f"query?query={query}")["result"]
        return {r["metric"].get("name"): float(r["value"][1]) for r in result}

    wait_until(lambda: value("pg_up") == {None: 1.0}, timeout=30)
    # Within the status timer's 15 s, a scrape's 10 s and a margin (an instance may have just restarted).
    wait_until(lambda: value("todo_instance_up") == {name: 1.0 for name in instances}, timeout=40)


def test_alert_rules_loaded_and_none_firing_on_a_healthy_host(host):
    groups = prometheus(host, "rules")["groups"]
    rules = [r for g in groups for r in g["rules"] if r["type"] == "alerting"]
    in_repo = re.findall(r"^\s+- alert: (\w+)$", (REPO / "monitoring" / "alerts.yml").read_text(), re.M)
    assert sorted(r["name"] for r in rules) == sorted(in_repo) and all(r["health"] == "ok" for r in rules), rules
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
