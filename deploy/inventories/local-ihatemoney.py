"""Inventory: ihatemoney (a Flask + SQLAlchemy + Flask-Migrate app published on PyPI), unmodified, on
PostgreSQL, on a local machine of its own (192.168.56.41), from a thin operator repository: a pinned
requirements.txt, a Procfile and the settings file its docs have operators write
(tests/apps/test_ihatemoney.py makes it; docs/your-app.md).

    scripts/machine --name ihatemoney --address 192.168.56.41 start
    scripts/provision deploy/inventories/local-ihatemoney.py --app PATH_TO_THE_OPERATOR_REPOSITORY
"""

import os

MACHINE_DIR = os.environ.get("TODO_IHATEMONEY_MACHINE_DIR", "/var/lib/todo-machine-ihatemoney")

hosts = [
    (
        "ihatemoney",
        {
            "ssh_config_file": f"{MACHINE_DIR}/ssh-config",
            "ssh_known_hosts_file": f"{MACHINE_DIR}/known_hosts",
            "ssh_hostname": "default",
            "_sudo": True,
            "server_names": ["192.168.56.41"],
            "rate_limit_exempt": ["192.168.56.2"],
            "fail2ban_ignore": ["192.168.56.1", "192.168.56.2"],
            # The app: the operator repository's top, its Procfile (web: and release:), the page
            # it answers without a login or a query, its static files inside its installed package,
            # and the settings file its docs describe, found through the variable they name (the
            # working directory is the release: launch.py).
            "app_name": "ihatemoney",
            "app_root": "",
            "health_path": "/healthcheck",
            "static_folder": "venv/lib/python3.11/site-packages/ihatemoney/static",
            "app_environment": {"IHATEMONEY_SETTINGS_FILE_PATH": "/proc/self/cwd/ihatemoney.cfg"},
            "monitoring": False,
        },
    )
]
