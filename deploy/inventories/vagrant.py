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
            # This box, the tests' load generator, is not POST-rate-limited; tests/host checks
            # the limit from a client that is not exempt (the machine's own loopback).
            "rate_limit_exempt": ["192.168.56.1"],
        },
    )
]
