"""Inventory: Flask's own tutorial app, flaskr, unmodified, on a local machine of its own
(192.168.56.40): the settings an operator writes to deploy an app of their own (docs/your-app.md).

flaskr (examples/tutorial in Flask's sdist) is a pyproject.toml project with no Procfile and no
gunicorn requirement; its SQLite database lives in its instance folder, Flask's instance_path:
<release>/instance, as gunicorn and flask import the package from the release's directory (first
on sys.path), kept across releases.

    scripts/machine --name flaskr --address 192.168.56.40 start
    scripts/provision deploy/inventories/local-flaskr.py --app PATH_TO_FLASKR_REPOSITORY
"""

import os

MACHINE_DIR = os.environ.get("TODO_FLASKR_MACHINE_DIR", "/var/lib/todo-machine-flaskr")

hosts = [
    (
        "flaskr",
        {
            "ssh_config_file": f"{MACHINE_DIR}/ssh-config",
            "ssh_known_hosts_file": f"{MACHINE_DIR}/known_hosts",
            # The Host alias of the machine's SSH config (vagrant ssh-config format).
            "ssh_hostname": "default",
            "_sudo": True,
            "server_names": ["192.168.56.40"],
            "rate_limit_exempt": ["192.168.56.2"],
            "fail2ban_ignore": ["192.168.56.1", "192.168.56.2"],
            # The app: its own repository's top (app_root ""), its WSGI entry point (flaskr has no
            # Procfile), a page that answers 200 without its database (its home page needs the
            # tables init-db makes), and its instance folder kept across releases.
            "app_name": "flaskr",
            "app_root": "",
            "wsgi_app": "flaskr:create_app()",
            "health_path": "/auth/login",
            "shared_dirs": ["instance"],
            # A second process type, as an operator adds one (flaskr has none): a heartbeat.
            "processes": {"clock": {"command": "while sleep 5; do echo tick; done", "count": 1}},
            # The load generator's address (tests/helpers.py) still reaches the app in maintenance mode.
            "maintenance_allow": ["192.168.56.2"],
            # Prometheus, its exporters and mtail, with the alert rules; flaskr serves no metrics of
            # its own (its requests are counted from nginx's access log).
            "metrics_path": "",
        },
    )
]
