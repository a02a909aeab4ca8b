"""First contact with a fresh VPS as root: the admin user is made and proven before root's SSH
login is closed; a failed proof leaves root's login as it was. The tests run in this order on
one new machine, as an operator's first hour would."""

import re
import subprocess
import time

import requests

from tests.conftest import ADDRESS
from tests.vps.conftest import inventory, provision, ssh


def test_a_failed_admin_proof_stops_the_run_and_leaves_root_its_login(vps, tmp_path, report):
    """admin_authorized_keys with a key nobody holds: the proof fails, the run stops, root still logs in."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().strip()
    started = time.monotonic()
    code, out = provision(inventory(vps, tmp_path / "root.py", "root", admin_authorized_keys=[other]))
    report("from bare as root, up to the failed proof", f"{time.monotonic() - started:.0f} s")
    assert code != 0 and "Root can still log in" in out, out[-3000:]
    assert ssh(vps, "root", "true").returncode == 0, "root was locked out"
    assert ssh(vps, "admin", "true").returncode != 0


def test_first_contact_as_root_makes_the_admin_user_and_closes_roots_login(vps, tmp_path, report):
    """One run as root serves the app over HTTPS; afterwards admin logs in and uses sudo, root cannot."""
    started = time.monotonic()
    code, out = provision(inventory(vps, tmp_path / "root.py", "root"))
    took = time.monotonic() - started
    assert code == 0, out[-3000:]
    assert f"From now on: admin@{ADDRESS}" in out
    report("first contact as root, the run after the failed proof (first release included)", f"{took:.0f} s")
    refused = ssh(vps, "root", "true")
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stderr
    assert ssh(vps, "admin", "sudo -n true").returncode == 0
    # The first release went through admin (root is closed): the site answers over HTTPS, with
    # the certificate read over SSH (never from the handshake it is meant to check).
    (tmp_path / "site.crt").write_text(ssh(vps, "admin", "cat /etc/ssl/todo/todo.crt").stdout)
    assert requests.get(f"https://{ADDRESS}/healthz", verify=str(tmp_path / "site.crt"), timeout=10).ok


def test_a_second_run_as_admin_changes_nothing(vps, tmp_path, report):
    started = time.monotonic()
    code, out = provision(inventory(vps, tmp_path / "admin.py", "admin"))
    took = time.monotonic() - started
    assert code == 0, out[-3000:]
    total = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)", out)
    assert total and total.group(2) == "-" and total.group(3) == "-", total.group(0) if total else out[-2000:]
    report("second run as admin", f"{took:.0f} s")
