"""Acknowledged todos survive a restart of the app and a reboot of the machine."""

import time

import pytest

from tests.helpers import add_todo, new_session, wait_for_http

APP = "todo"


def stored(host, text):
    """How many rows hold ``text`` (checked in the database, not the page)."""
    return int(
        host.check_output(
            f"runuser -u postgres -- psql -d {APP} -Atc \"SELECT count(*) FROM todo WHERE text='{text}'\""
        )
    )


@pytest.mark.destructive
def test_todo_survives_supervisorctl_restart(host, machine_address):
    web = new_session(machine_address)
    text = add_todo(web)
    old = host.check_output(f"supervisorctl pid {APP}:{APP}-0 {APP}:{APP}-1").split()
    assert host.run(f"supervisorctl restart {APP}:*").rc == 0
    assert host.check_output(f"supervisorctl pid {APP}:{APP}-0 {APP}:{APP}-1").split() != old
    page = wait_for_http(f"http://{machine_address}/", timeout=30)
    assert text in page.text and stored(host, text) == 1


@pytest.mark.destructive
def test_stack_and_todo_survive_reboot(host, machine_address):
    web = new_session(machine_address)
    text = add_todo(web)
    boot_id = host.check_output("cat /proc/sys/kernel/random/boot_id")
    host.run("systemd-run --on-active=1 systemctl reboot")  # return before the connection drops
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(2)
        try:
            if host.check_output("cat /proc/sys/kernel/random/boot_id") not in ("", boot_id):
                break
        except RuntimeError:  # testinfra: SSH failed (exit 255) while the machine is down
            continue
    else:
        pytest.fail("the machine did not come back within 120 s")
    assert host.run("systemctl is-system-running --wait").stdout.strip() == "running"
    for unit in ("nginx", "supervisor", "postgresql"):
        assert host.service(unit).is_running
    assert host.file(f"/run/{APP}/{APP}-0.sock").is_socket
    page = wait_for_http(f"http://{machine_address}/", timeout=60)
    assert text in page.text and stored(host, text) == 1
