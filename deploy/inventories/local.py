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
            # Only the tests' load generator (its own source address, tests/helpers.py) is exempt
            # from the POST rate limit; a browser on this box (192.168.56.1) is limited like any client.
            "rate_limit_exempt": ["192.168.56.2"],
            # This box and the load generator are never banned by fail2ban (tests run from them);
            # 192.168.56.3 is the ban tests' client (tests/host/test_hardening.py).
            "fail2ban_ignore": ["192.168.56.1", "192.168.56.2"],
        },
    )
]
