"""The cluster suite: deploy/inventories/cluster.py on five local machines (scripts/up --cluster):
the load balancer (192.168.56.10, machine "lb"), two app hosts (.11 "app1", .12 "app2"), PostgreSQL
(.20 "db") and pgBackRest's repository (.30 "backup"). Each machine is a testinfra host (root
through sudo) reached over its own SSH config, once its route is proven local: no ``--hosts``."""

import os
import runpy
import shlex

import pytest

from tests import helpers
from tests.conftest import REPO, named_machine
from tests.conftest import run_script as run  # noqa: F401 (the suite's tests import it from here)

INVENTORY = "deploy/inventories/cluster.py"
ADDRESSES = dict(runpy.run_path(str(REPO / INVENTORY))["_MACHINES"])
LB, DB_ADDRESS, BACKUP_ADDRESS = ADDRESSES["lb"], ADDRESSES["db"], ADDRESSES["backup"]
APP_HOSTS = ("app1", "app2")
#: The app hosts' nginx, on their private addresses (deploy/settings.py app_port).
APP_PORT = 8080


def machine(name):
    """The cluster's machine ``name`` as a testinfra host, once its route is proven local."""
    return named_machine(name, ADDRESSES[name])


@pytest.fixture(scope="session")
def lb(tmp_path_factory):
    """The load balancer; every ``requests`` call of the run trusts its certificate (read over SSH)."""
    host = machine("lb")
    path = tmp_path_factory.mktemp("tls") / "lb.crt"
    path.write_text(host.check_output("cat /etc/ssl/todo/todo.crt") + "\n")
    os.environ["REQUESTS_CA_BUNDLE"] = str(path)
    helpers.APP = "todo"
    return host


@pytest.fixture(scope="session")
def apps():
    """The app hosts, {name: host}."""
    return {name: machine(name) for name in APP_HOSTS}


@pytest.fixture(scope="session")
def db_host():
    """The database host."""
    return machine("db")


@pytest.fixture(scope="session")
def backup_host():
    """The backup host."""
    return machine("backup")


#: On the load balancer: one HTTP request to an app host's nginx, as the load balancer sends it
#: (Host, X-Forwarded-*); prints the status, the Set-Cookie header and the body.
_APP_REQUEST = """
import http.client, sys
address, method, path, body, cookie = sys.argv[1:6]
headers = {"Host": "LB", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "LB", "X-Forwarded-For": "192.0.2.7",
           "Referer": "https://LB/", "Content-Type": "application/x-www-form-urlencoded"}
if cookie:
    headers["Cookie"] = cookie
conn = http.client.HTTPConnection(address, APP_PORT, timeout=10)
conn.request(method, path, body=body or None, headers=headers)
response = conn.getresponse()
print(response.status)
print((response.getheader("Set-Cookie") or "").split(";")[0])
sys.stdout.write(response.read().decode(errors="replace"))
""".replace("APP_PORT", str(APP_PORT)).replace("LB", LB)


def app_request(lb_host, app, method="GET", path="/", body="", cookie=""):
    """From the load balancer, ``method path`` straight to app host ``app``'s nginx; (status, cookie, body)."""
    args = " ".join(shlex.quote(a) for a in (ADDRESSES[app], method, path, body, cookie))
    out = lb_host.check_output(f"python3 -c {shlex.quote(_APP_REQUEST)} {args}")
    status, cookie, body = (out.split("\n", 2) + ["", ""])[:3]
    return int(status), cookie, body
