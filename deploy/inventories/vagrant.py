"""Inventory: the Vagrant VM of ./Vagrantfile, reached through `vagrant ssh-config` (scripts/provision vagrant)."""

hosts = [
    (
        "default",
        {
            "ssh_config_file": ".vagrant/ssh-config",
            # Vagrant boxes get a fresh host key on every `vagrant up`, as `vagrant ssh-config` says.
            "ssh_strict_host_key_checking": "no",
            "_sudo": True,
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
