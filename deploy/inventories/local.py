"""Inventory: the local Debian machine made by scripts/machine (or a Vagrant VM at the same address)."""

import os

MACHINE_DIR = os.environ.get("TODO_MACHINE_DIR", "/var/lib/todo-machine")

hosts = [
    (
        "default",
        {
            "ssh_config_file": f"{MACHINE_DIR}/ssh-config",
            "ssh_known_hosts_file": f"{MACHINE_DIR}/known_hosts",
            "_sudo": True,
            # The private address tests and browsers use; other Host headers get 444.
            "server_names": ["192.168.56.10"],
            # This box, the tests' load generator, is not POST-rate-limited; tests/host checks
            # the limit from a client that is not exempt (the machine's own loopback).
            "rate_limit_exempt": ["192.168.56.1"],
        },
    )
]
