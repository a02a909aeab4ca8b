"""Inventory: an example production server; copy it, put your host's address and settings in.

scripts/provision deploy/inventories/prod.py    (then: scripts/release --target deploy/inventories/prod.py)

Every key below is a setting of deploy/settings.py (defaults there, one line each) or one of
pyinfra's connection keys (ssh_user, ssh_port, ssh_key, _sudo). The login user needs your SSH
key and passwordless sudo; provisioning makes it a member of the deploy group (git push).
203.0.113.5 is a documentation address (RFC 5737): provisioning it fails until you change it.
"""

hosts = [
    (
        "203.0.113.5",
        {
            "ssh_user": "admin",
            "_sudo": True,
            # The names nginx answers to; other Host headers get no answer (444).
            "server_names": ["203.0.113.5"],
            # gunicorn instances behind nginx, and workers in each (None: from the host's cores).
            "instances": 2,
            "workers_per_instance": None,
            # Your certificate and key (PEM, on this workstation); None: self-signed on the server.
            "tls_certificate": None,
            "tls_certificate_key": None,
        },
    )
]
