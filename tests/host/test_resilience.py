"""Acknowledged todos survive a restart of the app and a reboot of the machine."""

import pytest

from tests.helpers import add_todo, new_session, stored, wait_for_http, wait_until


@pytest.mark.destructive
def test_todo_survives_supervisorctl_restart(host, machine_address, instances):
    web = new_session(machine_address)
    text = add_todo(web)
    names = " ".join(instances)
    old = host.check_output(f"supervisorctl pid {names}").split()
    assert host.run(f"supervisorctl restart {names}").rc == 0
    assert host.check_output(f"supervisorctl pid {names}").split() != old
    page = wait_for_http(f"https://{machine_address}/", timeout=30)
    assert text in page.text and stored(host, text) == 1


@pytest.mark.destructive
@pytest.mark.reboot
def test_stack_and_todo_survive_reboot(host, machine_address, app_name, instances):
    web = new_session(machine_address)
    text = add_todo(web)
    boot_id = host.check_output("cat /proc/sys/kernel/random/boot_id")
    host.run("systemd-run --on-active=1 systemctl reboot")  # return before the connection drops
    wait_until(lambda: host.check_output("cat /proc/sys/kernel/random/boot_id") not in ("", boot_id), 120, interval=2)
    assert host.run("systemctl is-system-running --wait").stdout.strip() == "running"
    for unit in ("nginx", "supervisor", "postgresql"):
        assert host.service(unit).is_running
    page = wait_for_http(f"https://{machine_address}/", timeout=60)
    assert text in page.text and stored(host, text) == 1
    # Every instance RUNNING with its socket open to nginx: the state the rest of the host suite checks.
    wait_until(lambda: all(host.supervisor(name).is_running for name in instances), timeout=30)
    for name in instances:
        wait_until(lambda: host.file(f"/run/{app_name}/{name}.sock").mode == 0o660, timeout=30)  # noqa: B023
