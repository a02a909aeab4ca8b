"""An ACME certificate end to end (deploy/tasks/acme.py) against a real ACME server on this box
(tests/acme_server.py: pebble, its DNS answering todo.test with the machine's address): the
first issuance through nginx's webroot, a renewal by certbot.timer's own unit under load with
no failed request, and a failed renewal that leaves the old certificate serving. Runs after
test_ssh_port.py, as admin, on the same VPS machine."""

import re
import socket
import ssl
import time

import pytest

from tests.acme_server import DIRECTORY, AcmeServer
from tests.conftest import ADDRESS
from tests.helpers import new_session
from tests.load import Load
from tests.vps.conftest import inventory, provision, ssh

NAME = "todo.test"


@pytest.fixture(scope="module")
def acme_site(vps, tmp_path_factory):
    """The VPS provisioned with an ACME certificate for todo.test from pebble; yields the ACME
    server and the file of its root CA (what the site's clients trust)."""
    workdir = tmp_path_factory.mktemp("acme")
    with AcmeServer(workdir, ADDRESS) as server:
        roots = workdir / "roots.pem"
        roots.write_text(server.roots())
        settings = {
            "server_names": [NAME, ADDRESS],
            "tls_acme_email": f"ops@{NAME}",
            "tls_acme_server": DIRECTORY,
            "tls_acme_ca_bundle": str(server.ca),
        }
        server.first = provision(inventory(vps, workdir / "acme.py", "admin", **settings))
        server.again = lambda: provision(inventory(vps, workdir / "acme.py", "admin", **settings))
        yield server, roots


@pytest.fixture
def trust(acme_site, monkeypatch):
    """Every requests call of the test trusts pebble's root (the load's clients too)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(acme_site[1]))


def served(roots):
    """The certificate nginx serves for todo.test (SNI), verified against pebble's root."""
    context = ssl.create_default_context(cafile=str(roots))
    raw = socket.create_connection((ADDRESS, 443), timeout=10)
    with context.wrap_socket(raw, server_hostname=NAME) as tls:
        return tls.getpeercert()


def renew(vps):
    """certbot.timer's unit, started now (its `certbot -q renew`; pebble's certificates are due at once)."""
    return ssh(vps, "admin", "sudo -n systemctl start certbot.service")


def test_first_issuance_serves_the_acme_certificate_for_the_domain(acme_site, trust, vps):
    server, roots = acme_site
    code, out = server.first
    assert code == 0, out[-3000:]
    cert = served(roots)  # verified: pebble's chain, for todo.test
    assert "Pebble Intermediate" in str(cert["issuer"]), cert["issuer"]
    session = new_session(ADDRESS, name=NAME)
    assert session.get(f"{session.base}/healthz", timeout=10).ok
    # The key was made on the server (certbot), root-only; renewals run the deploy hook.
    facts = ssh(vps, "admin", "sudo -n sh -c 'stat -Lc %a:%U /etc/letsencrypt/live/todo/privkey.pem; "
                "grep ^renew_hook /etc/letsencrypt/renewal/todo.conf; systemctl is-enabled certbot.timer; "
                "systemctl is-active certbot.timer'").stdout.split("\n")  # fmt: skip
    assert facts[:4] == ["600:root", "renew_hook = /usr/local/sbin/todo-certbot-deploy", "enabled", "active"], facts


def test_a_second_run_with_acme_changes_nothing(acme_site):
    code, out = acme_site[0].again()
    total = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+)", out)
    assert code == 0 and total and total.group(2) == "-", out[-3000:]


def test_renewal_under_load_serves_the_new_certificate_with_no_failed_request(acme_site, trust, vps, report):
    roots = acme_site[1]
    before = served(roots)["serialNumber"]
    with Load(ADDRESS, clients=10, max_seconds=60, name=NAME) as load:
        time.sleep(2)
        renewed = renew(vps)
        time.sleep(2)
    report("ACME renewal under load", load.summary())
    assert renewed.returncode == 0, renewed.stderr
    assert served(roots)["serialNumber"] != before, "nginx still serves the old certificate"
    assert load.requests > 0 and not load.failures, load.failures[:5]


def test_a_failed_renewal_keeps_the_old_certificate_serving(acme_site, trust, vps):
    server, roots = acme_site
    before = served(roots)["serialNumber"]
    server.answer(NAME, "127.0.0.1")  # validation now goes nowhere: the challenge fails
    try:
        failed = renew(vps)
    finally:
        server.answer(NAME, None)
    assert failed.returncode != 0, "the renewal did not fail"
    assert served(roots)["serialNumber"] == before
    session = new_session(ADDRESS, name=NAME)
    assert session.get(f"{session.base}/healthz", timeout=10).ok


def test_without_acme_again_the_site_gets_a_self_signed_certificate(acme_site, vps, tmp_path):
    """tls_acme_email removed: certbot's certificate and renewals are deleted (no renewal may
    replace the site's certificate) and a self-signed one for the server names serves."""
    code, out = provision(inventory(vps, tmp_path / "plain.py", "admin"))
    assert code == 0, out[-3000:]
    left = ssh(vps, "admin", "sudo -n ls /etc/letsencrypt/renewal /etc/systemd/system/certbot.service.d 2>&1")
    assert "todo.conf" not in left.stdout, left.stdout
    (tmp_path / "site.crt").write_text(ssh(vps, "admin", "cat /etc/ssl/todo/todo.crt").stdout)
    context = ssl.create_default_context(cafile=str(tmp_path / "site.crt"))
    raw = socket.create_connection((ADDRESS, 443), timeout=10)
    with context.wrap_socket(raw, server_hostname=ADDRESS) as tls:  # self-signed: it is its own CA
        assert tls.getpeercert()["issuer"] == tls.getpeercert()["subject"]
