"""Inventory: the stack over three local machines, as it grows out of one server.

- lb and app: 192.168.56.10 (``scripts/machine --name app --address 192.168.56.10 start``; the
  address of the single local machine, which must be stopped): nginx and the instances;
- db: 192.168.56.20 (``scripts/machine --name db --address 192.168.56.20 start``): PostgreSQL,
  reached by the app host over TLS (sslmode=verify-full) on the private network only;
- backup: 192.168.56.30 (``scripts/machine --name backup --address 192.168.56.30 start``):
  pgBackRest's repository.

    scripts/up --cluster      (or: start the three machines, then scripts/provision deploy/inventories/cluster.py)

Monitoring across hosts is not built yet: it is off here (scripts/status works on the app host).
"""

import os


def _machine(name, address, **data):
    """A local machine of scripts/machine (its SSH config's ``Host default``) at ``address``."""
    folder = os.environ.get(f"TODO_{name.upper()}_MACHINE_DIR", f"/var/lib/todo-machine-{name}")
    return (name, {"ssh_config_file": f"{folder}/ssh-config", "ssh_known_hosts_file": f"{folder}/known_hosts",
                   "ssh_hostname": "default", "_sudo": True, "private_address": address, "monitoring": False,
                   "fail2ban_ignore": ["192.168.56.1", "192.168.56.2"], **data})  # fmt: skip


# The tests' addresses as in local.py: this box and the load generator are never banned, and the
# load generator is exempt from the POST rate limit.
lb = app = [_machine("app", "192.168.56.10", server_names=["192.168.56.10"], rate_limit_exempt=["192.168.56.2"])]
db = [_machine("db", "192.168.56.20")]
backup = [_machine("backup", "192.168.56.30")]
