"""Inventory: the local machine (192.168.56.10) as the stack, and a second local machine
(192.168.56.30, ``scripts/machine --name backup --address 192.168.56.30 start``) as its backup
host: pgBackRest's repository off the database server (deploy/roles.py).

    scripts/machine --name backup --address 192.168.56.30 start
    scripts/provision deploy/inventories/local-backup.py
"""

import os

from deploy.inventories.local import hosts as _local_hosts

BACKUP_DIR = os.environ.get("TODO_BACKUP_MACHINE_DIR", "/var/lib/todo-machine-backup")

_name, _data = _local_hosts[0]
_server = (_name, {**_data, "private_address": "192.168.56.10"})

# The stack: load balancer, app and database on one host.
lb = app = db = [_server]
backup = [
    (
        "backup",
        {
            "ssh_config_file": f"{BACKUP_DIR}/ssh-config",
            "ssh_known_hosts_file": f"{BACKUP_DIR}/known_hosts",
            # The Host alias of the machine's SSH config (vagrant ssh-config format).
            "ssh_hostname": "default",
            "_sudo": True,
            "private_address": "192.168.56.30",
            # A backup host runs no Prometheus (and opens only SSH: firewall_tcp_ports is [] off the lb).
            "monitoring": False,
            "fail2ban_ignore": ["192.168.56.1", "192.168.56.2"],
        },
    )
]
