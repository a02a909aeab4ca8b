"""Roles from inventory groups (deploy/roles.py), on pyinfra's own Inventory objects: no host is
contacted. And the inventories this repo ships name hosts the way the deploy accepts."""

import runpy

import pytest
from pyinfra.api import Inventory

from deploy.roles import ROLES, topology
from deploy.settings import SettingError
from deploy.ssh import inventory_hosts
from tests.conftest import REPO

SERVER = ("server", {"private_address": "192.0.2.10"})
DB = ("db", {"private_address": "192.0.2.20"})
#: A host's topology on one server: no peers.
ALONE = {"backup_peer": None, "db_peer": None, "database": None, "db_clients": [], "app_hosts": [], "lb_addresses": []}
BACKUP = ("backup", {"private_address": "192.0.2.30"})


def inventory(**groups):
    """A pyinfra Inventory of the hosts in ``groups`` (name: [(host, data), ...])."""
    names = list({name: (name, data) for hosts in groups.values() for name, data in hosts}.values())
    return Inventory((names, {}), **{group: (hosts, {}) for group, hosts in groups.items() if group != "hosts"})


def test_an_inventory_without_role_groups_makes_every_host_a_whole_stack_with_its_own_repository():
    inv = inventory(hosts=[SERVER, BACKUP])
    for h in inv:
        assert topology(h, inv) == {**ALONE, "roles": ROLES}


def test_a_backup_host_is_the_servers_repository_host_and_the_server_its_database_host():
    inv = inventory(lb=[SERVER], app=[SERVER], db=[SERVER], backup=[BACKUP])
    server, backup = inv.get_host("server"), inv.get_host("backup")
    assert topology(server, inv) == {**ALONE, "roles": ("lb", "app", "db"), "backup_peer": ("backup", "192.0.2.30")}
    assert topology(backup, inv) == {**ALONE, "roles": ("backup",), "db_peer": ("server", "192.0.2.10")}


def test_the_backup_role_on_the_server_itself_is_the_local_repository():
    inv = inventory(lb=[SERVER], app=[SERVER], db=[SERVER], backup=[SERVER])
    assert topology(inv.get_host("server"), inv) == {**ALONE, "roles": ROLES}


def test_a_database_host_apart_serves_the_app_host_and_sends_its_backups_to_the_backup_host():
    inv = inventory(lb=[SERVER], app=[SERVER], db=[DB], backup=[BACKUP])
    server, db, backup = (inv.get_host(name) for name in ("server", "db", "backup"))
    assert topology(server, inv) == {**ALONE, "roles": ("lb", "app"), "database": ("db", "192.0.2.20")}
    assert topology(db, inv) == {**ALONE, "roles": ("db",), "db_clients": ["192.0.2.10"],
                                 "backup_peer": ("backup", "192.0.2.30")}  # fmt: skip
    assert topology(backup, inv) == {**ALONE, "roles": ("backup",), "db_peer": ("db", "192.0.2.20")}


def test_a_load_balancer_apart_balances_over_the_app_hosts_which_admit_it_alone():
    app1, app2 = ("app1", {"private_address": "192.0.2.11"}), ("app2", {"private_address": "192.0.2.12"})
    inv = inventory(lb=[SERVER], app=[app1, app2], db=[DB])
    lb, one, two, db = (inv.get_host(name) for name in ("server", "app1", "app2", "db"))
    hosts = [("app1", "192.0.2.11"), ("app2", "192.0.2.12")]
    assert topology(lb, inv) == {**ALONE, "roles": ("lb",), "app_hosts": hosts}
    for h in (one, two):
        assert topology(h, inv) == {**ALONE, "roles": ("app",), "database": ("db", "192.0.2.20"),
                                    "lb_addresses": ["192.0.2.10"]}  # fmt: skip
    assert topology(db, inv) == {**ALONE, "roles": ("db",), "db_clients": ["192.0.2.11", "192.0.2.12"]}


def test_a_load_balancer_that_is_also_an_app_host_balances_over_itself_too_and_hosts_the_database():
    app2 = ("app2", {"private_address": "192.0.2.12"})
    inv = inventory(lb=[SERVER], app=[SERVER, app2], db=[SERVER])
    server, two = inv.get_host("server"), inv.get_host("app2")
    assert topology(server, inv) == {**ALONE, "roles": ("lb", "app", "db"), "db_clients": ["192.0.2.12"],
                                     "app_hosts": [("server", "192.0.2.10"), ("app2", "192.0.2.12")],
                                     "lb_addresses": ["192.0.2.10"]}  # fmt: skip
    assert topology(two, inv)["database"] == ("server", "192.0.2.10")


def whole(*hosts):
    """Groups putting lb, app and db on ``hosts``."""
    return {role: list(hosts) for role in ("lb", "app", "db")}


@pytest.mark.parametrize(
    ("groups", "message"),
    [
        ({"lb": [SERVER], "app": [SERVER]}, "one database host"),
        ({"lb": [SERVER, BACKUP], "app": [SERVER, BACKUP], "db": [DB]}, "one load balancer"),
        ({"app": [SERVER], "db": [DB]}, "one load balancer"),
        ({"lb": [SERVER], "db": [DB]}, "no app host"),
        ({**whole(SERVER), "backup": [BACKUP, ("b2", {"private_address": "192.0.2.31"})]}, "one backup host at most"),
        ({**whole(SERVER), "other": [BACKUP]}, "in no role group"),
        ({**whole(SERVER), "backup": [("backup", {})]}, "set private_address"),
        ({**whole(SERVER), "backup": [("b", {"private_address": "x"})]}, "must be an IPv4 address"),
        ({**whole(SERVER), "backup": [("b", {"private_address": "2001:db8::30"})]}, "must be an IPv4 address"),
    ],
)
def test_a_topology_the_deploy_cannot_build_is_refused_naming_the_host(groups, message):
    inv = inventory(**groups)
    with pytest.raises(SettingError, match=message):
        for h in inv:
            topology(h, inv)


def test_the_shipped_backup_host_inventory_has_the_roles_the_deploy_builds():
    """deploy/inventories/local-backup.py, as pyinfra reads it (groups are module-level lists) and as
    the operator's scripts read it (deploy/ssh.py, without the route guard: no machine here)."""
    path = REPO / "deploy/inventories/local-backup.py"
    groups = {k: v for k, v in runpy.run_path(str(path)).items() if isinstance(v, list) and not k.startswith("_")}
    assert sorted(groups) == ["app", "backup", "db", "lb"]
    inv = inventory(**groups)
    assert topology(inv.get_host("backup"), inv)["db_peer"] == ("default", "192.168.56.10")
    assert topology(inv.get_host("default"), inv)["database"] is None
    assert topology(inv.get_host("default"), inv)["backup_peer"] == ("backup", "192.168.56.30")
    import deploy.ssh

    guard, deploy.ssh.guard_routes = deploy.ssh.guard_routes, lambda datas: None
    try:
        roles = {name: data["_roles"] for name, data in inventory_hosts(path)}
    finally:
        deploy.ssh.guard_routes = guard
    assert roles == {"default": ("lb", "app", "db"), "backup": ("backup",)}
