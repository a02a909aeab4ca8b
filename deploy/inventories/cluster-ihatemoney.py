"""Inventory: the cluster of deploy/inventories/cluster.py (a load balancer, two app hosts, the
database, the backup host) serving ihatemoney instead of the sample app: the same five machines
and app name, with ihatemoney's settings (deploy/inventories/local-ihatemoney.py's). The app is
the operator's thin repository tests/apps/conftest.py makes; tests/cluster/test_your_app_cluster.py
provisions the cluster with this inventory, then releases it through the load balancer:

    scripts/provision deploy/inventories/cluster-ihatemoney.py --app PATH_TO_THE_OPERATOR_REPOSITORY
    scripts/release --app PATH_TO_THE_OPERATOR_REPOSITORY --target deploy/inventories/cluster-ihatemoney.py
"""

import os
import runpy

_HERE = os.path.dirname(os.path.abspath(__file__))
_CLUSTER = runpy.run_path(os.path.join(_HERE, "cluster.py"))
#: ihatemoney's settings: the repository's top, the page it answers without a login, its static
#: files inside its installed package, its settings file found through the variable its docs name.
_APP = {
    "app_root": "",
    "health_path": "/healthcheck",
    "static_folder": "venv/lib/python3.11/site-packages/ihatemoney/static",
    "app_environment": {"IHATEMONEY_SETTINGS_FILE_PATH": "/proc/self/cwd/ihatemoney.cfg"},
}

lb, app, db, backup = (
    [(name, {**data, **_APP}) for name, data in _CLUSTER[group]] for group in ("lb", "app", "db", "backup")
)
