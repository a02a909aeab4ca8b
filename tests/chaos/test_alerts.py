"""Alerts that fire for real: an instance stopped by hand is TodoInstanceDown in Prometheus within
the rule's for: plus the status tool's report, a scrape and an evaluation, and resolves once it
is back; a worker killed
keeps its requests in the instance's counter (prometheus_client's multiprocess files stay)."""

import json

import pytest
import requests

from tests.e2e.test_observability import page_count
from tests.helpers import instance_pids, local_get, wait_until

pytestmark = pytest.mark.chaos

#: TodoInstanceDown's for: (monitoring/alerts.yml), Prometheus's scrape and evaluation intervals
#: (monitoring/prometheus.yml.j2), and a bound on the time between two of the status tool's reports
#: (its timer starts it 15 s after the last start; a run under load takes seconds), in seconds.
FOR, SCRAPE, EVALUATION, STATUS = 30, 10, 10, 30


def firing(host, alert):
    """{name label: state} of the alerts named ``alert`` Prometheus holds (pending, firing)."""
    data = json.loads(local_get(host, "http://127.0.0.1:9090/api/v1/alerts"))["data"]
    return {a["labels"].get("name"): a["state"] for a in data["alerts"] if a["labels"]["alertname"] == alert}


def test_an_instance_stopped_fires_instance_down_and_it_resolves_when_started(host, app_name, instances, report):
    victim = instances[-1]
    host.check_output(f"supervisorctl stop {victim}")
    try:
        _, took = wait_until(
            lambda: firing(host, "TodoInstanceDown").get(victim) == "firing",
            timeout=FOR + STATUS + SCRAPE + EVALUATION + 10,
        )
        assert set(firing(host, "TodoInstanceDown")) == {victim}  # the others are up
        # scripts/status's tool shows it too, and needs attention for it.
        shown = host.run(f"/usr/local/sbin/{app_name}-status --json")
        assert shown.rc == 1 and "TodoInstanceDown" in {a["name"] for a in json.loads(shown.stdout)["alerts"]}
        report("instance stopped to TodoInstanceDown firing", f"{took:.0f} s (for: {FOR} s)")
    finally:
        host.check_output(f"supervisorctl start {victim}")
    _, took = wait_until(
        lambda: victim not in firing(host, "TodoInstanceDown"), timeout=STATUS + SCRAPE + EVALUATION + 40
    )
    report("instance started to TodoInstanceDown resolved", f"{took:.0f} s")


def test_a_worker_killed_keeps_its_requests_in_the_counter(host, machine_address, instances):
    from tests.chaos.test_crashes import gunicorn_processes

    for _ in range(40):
        requests.get(f"https://{machine_address}/", timeout=10).raise_for_status()
    assert page_count(host, instances[:1]) > 0, "instance 0 answered none of the pages: its kill would prove nothing"
    before = page_count(host, instances)
    master = instance_pids(host, instances)[instances[0]]
    workers = sorted(pid for pid, ppid in gunicorn_processes(host) if ppid == master)
    for pid in workers:  # every worker of the instance: whatever share of the 40 it answered
        host.run(f"kill -9 {pid}")
    wait_until(lambda: len([p for p, pp in gunicorn_processes(host) if pp == master]) == len(workers), timeout=10)
    assert page_count(host, instances) == before
