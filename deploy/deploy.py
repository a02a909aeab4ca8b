"""Converge a Debian 12 host to the todo stack: nginx -> gunicorn (supervisor) -> PostgreSQL.

Run through scripts/provision (``pyinfra INVENTORY deploy/deploy.py``). Every step is
"ensure X"; services reload only when something they depend on changed, and state drifted
by hand (modes, owners, live sysctl values, loaded firewall rules, enabled units, stopped
instances) is put back, so a second run reports no changes. One module per concern under
deploy/tasks/, composed here in the order they run; settings and their defaults in
deploy/settings.py. pyinfra runs from the repo root (scripts/provision), which it puts on
sys.path for ``deploy.*``.
"""

from deploy.settings import stack
from deploy.tasks.acme import acme
from deploy.tasks.admin import first_contact
from deploy.tasks.backups import backups
from deploy.tasks.hardening import hardening
from deploy.tasks.monitoring import monitoring
from deploy.tasks.nginx import nginx
from deploy.tasks.packages import packages
from deploy.tasks.postgresql import postgresql
from deploy.tasks.releases import releases
from deploy.tasks.secrets import secrets
from deploy.tasks.supervisor import supervisor
from deploy.tasks.users import users_and_directories

s = stack()
# A backup host (deploy/roles.py) gets the hardened base and pgBackRest's repository; every other
# host holds the whole stack (lb, app and db together).
whole = "app" in s["roles"]
packages(s)
hardening(s)
if whole:
    users_and_directories(s)
    generated = secrets(s)
    postgresql(s, generated)
backups(s)
if whole:
    releases(s)
    nginx(s)
    supervisor(s)
    monitoring(s)
first_contact(s)
if whole:
    # Last: a domain that does not resolve here yet fails only this step, after everything else.
    acme(s)
