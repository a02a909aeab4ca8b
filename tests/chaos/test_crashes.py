"""The stack heals itself after kill -9 of each of its processes (supervisor, systemd drop-ins)."""

import pytest
import requests

from tests.helpers import add_todo, new_session, stored, wait_until

pytestmark = pytest.mark.chaos

APP = "todo"
INSTANCES = [f"{APP}-0", f"{APP}-1"]


def main_pid(host, unit):
    """systemd's MainPID of ``unit`` (0 when it is not running)."""
    return int(host.check_output(f"systemctl show -p MainPID --value {unit}"))


def instance_pids(host):
    """{instance: master PID} from supervisor, only for RUNNING instances."""
    pids = {}
    for line in host.check_output(f"supervisorctl status {' '.join(INSTANCES)}").splitlines():
        name, state, *rest = line.split()
        if state == "RUNNING":
            pids[name] = int(rest[1].rstrip(","))
    return pids


def gunicorn_processes(host):
    """(pid, ppid) of every process running gunicorn on the machine."""
    out = host.check_output("ps -eo pid=,ppid=,args= | grep '[g]unicorn' || true")
    return [tuple(int(x) for x in line.split()[:2]) for line in out.splitlines()]


def http_ok(address, path="/healthz"):
    """True when the site answers 200 on ``path``."""
    return requests.get(f"http://{address}{path}", timeout=2).status_code == 200


@pytest.fixture
def acknowledged(host, machine_address):
    """A todo acknowledged with a 2xx before the fault; checked in the database after it."""
    text = add_todo(new_session(machine_address))
    yield text
    assert stored(host, text) == 1, f"todo {text!r} lost"


def test_nginx_master_killed_is_back_within_5s(host, machine_address, acknowledged, report):
    old = main_pid(host, "nginx")
    host.run(f"kill -9 {old}")
    _, took = wait_until(lambda: main_pid(host, "nginx") not in (0, old) and http_ok(machine_address), timeout=5)
    report("nginx master kill -9", f"recovered in {took:.1f} s")


def test_postmaster_killed_is_back_within_10s_and_app_recovers_without_restart(
    host, machine_address, acknowledged, report
):
    masters = instance_pids(host)
    old = main_pid(host, "postgresql@15-main")
    host.run(f"kill -9 {old}")
    _, took = wait_until(
        lambda: main_pid(host, "postgresql@15-main") not in (0, old) and http_ok(machine_address, "/"), timeout=10
    )
    report("postmaster kill -9 (to a 200 page)", f"recovered in {took:.1f} s")
    assert instance_pids(host) == masters  # gunicorn was not restarted: the pool reconnected


def test_gunicorn_worker_killed_is_respawned_within_2s(host, report):
    master = instance_pids(host)[INSTANCES[0]]
    workers = sorted(pid for pid, ppid in gunicorn_processes(host) if ppid == master)
    host.run(f"kill -9 {workers[0]}")

    def respawned():
        now = sorted(pid for pid, ppid in gunicorn_processes(host) if ppid == master)
        return len(now) == len(workers) and workers[0] not in now

    _, took = wait_until(respawned, timeout=2)
    report("gunicorn worker kill -9", f"recovered in {took:.1f} s")


def test_gunicorn_master_killed_is_restarted_within_5s_and_other_instance_serves(host, machine_address, report):
    before = instance_pids(host)
    victim = before[INSTANCES[0]]
    host.run(f"kill -9 {victim}")
    # Meanwhile every GET is answered by the other instance.
    statuses = [requests.get(f"http://{machine_address}/", timeout=5).status_code for _ in range(20)]
    assert set(statuses) == {200}
    _, took = wait_until(lambda: instance_pids(host).get(INSTANCES[0]) not in (None, victim), timeout=5)
    report("gunicorn master kill -9", f"recovered in {took:.1f} s")
    assert host.socket(f"unix:///run/{APP}/{INSTANCES[0]}.sock").is_listening
    # The old master's workers notice their parent is gone and exit: no orphans.
    wait_until(lambda: all(ppid != 1 for _, ppid in gunicorn_processes(host)), timeout=35)


def test_supervisord_killed_is_back_with_one_master_per_instance(host, machine_address, acknowledged, report):
    old = main_pid(host, "supervisor")
    host.run(f"kill -9 {old}")

    def healed():
        supervisord = main_pid(host, "supervisor")
        pids = instance_pids(host)
        procs = gunicorn_processes(host)
        masters = [pid for pid, ppid in procs if ppid == supervisord]
        return (
            supervisord not in (0, old)
            and len(pids) == len(INSTANCES)
            and sorted(masters) == sorted(pids.values())
            and all(ppid in masters or ppid == supervisord for _, ppid in procs)  # no orphans
            and http_ok(machine_address)
        )

    _, took = wait_until(healed, timeout=30)
    report("supervisord kill -9 (to all instances running, no orphans)", f"recovered in {took:.1f} s")
