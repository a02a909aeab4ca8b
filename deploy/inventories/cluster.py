"""Inventory: the stack over five local machines, as it grows out of one server.

- lb: 192.168.56.10 (the address of the single local machine, which must be stopped): nginx with
  TLS, the limits and the caches, balancing over the app hosts;
- app1, app2: 192.168.56.11 and .12: nginx and the instances, for the load balancer only;
- db: 192.168.56.20: PostgreSQL, reached by the app hosts over TLS (sslmode=verify-full) on the
  private network only;
- backup: 192.168.56.30: pgBackRest's repository.

Each is ``scripts/machine --name NAME --address ADDRESS start``; all at once, provisioned:

    scripts/up --cluster      (or: start the five machines, then scripts/provision deploy/inventories/cluster.py)

Monitoring across hosts is not built yet: it is off here (scripts/status works on the app and
database hosts).
"""

import os


def _machine(name, address, **data):
    """A local machine of scripts/machine (its SSH config's ``Host default``) at ``address``."""
    folder = os.environ.get(f"TODO_{name.upper()}_MACHINE_DIR", f"/var/lib/todo-machine-{name}")
    return (name, {"ssh_config_file": f"{folder}/ssh-config", "ssh_known_hosts_file": f"{folder}/known_hosts",
                   "ssh_hostname": "default", "_sudo": True, "private_address": address, "monitoring": False,
                   "fail2ban_ignore": ["192.168.56.1", "192.168.56.2"], **data})  # fmt: skip


#: The machines of the cluster, (name, address), in the order scripts/up starts them.
_MACHINES = (("lb", "192.168.56.10"), ("app1", "192.168.56.11"), ("app2", "192.168.56.12"),
            ("db", "192.168.56.20"), ("backup", "192.168.56.30"))  # fmt: skip
_address = dict(_MACHINES)

# The tests' addresses as in local.py: this box and the load generator are never banned, and the
# load generator is exempt from the POST rate limit.
lb = [_machine("lb", _address["lb"], server_names=[_address["lb"]], rate_limit_exempt=["192.168.56.2"])]
app = [_machine(name, _address[name]) for name in ("app1", "app2")]
db = [_machine("db", _address["db"])]
backup = [_machine("backup", _address["backup"])]
