"""Converge a Debian 12 host to the todo stack: nginx -> gunicorn (supervisor) -> PostgreSQL.

Run through scripts/provision (``pyinfra INVENTORY deploy/deploy.py``). Every step is
"ensure X"; services reload only when something they depend on changed, and state drifted
by hand (modes, owners, live sysctl values, loaded firewall rules, enabled units, stopped
instances) is put back, so a second run reports no changes. One module per concern under
deploy/tasks/, composed here in the order they run; settings and their defaults in
deploy/settings.py. pyinfra runs from the repo root (scripts/provision), which it puts on
sys.path for ``deploy.*``.
"""

from deploy.operations import barrier, server_common
from deploy.settings import stack
from deploy.tasks.acme import acme
from deploy.tasks.admin import first_contact
from deploy.tasks.backups import backups
from deploy.tasks.hardening import hardening
from deploy.tasks.loads import loads
from deploy.tasks.monitoring import monitoring
from deploy.tasks.nginx import nginx
from deploy.tasks.packages import packages
from deploy.tasks.postgresql import database_client, postgresql
from deploy.tasks.releases import releases
from deploy.tasks.secrets import secrets
from deploy.tasks.supervisor import supervisor
from deploy.tasks.users import users_and_directories

s = stack()
# Each host gets the parts of its roles (deploy/roles.py): one server holds them all; a load
# balancer apart gets nginx; an app host nginx and the instances; a database host apart
# PostgreSQL; a backup host only the hardened base and pgBackRest's repository.
roles = s["roles"]
stack_host = "app" in roles or "db" in roles
packages(s)
hardening(s)
if stack_host:
    users_and_directories(s)
    generated = secrets(s)
if stack_host or "lb" in roles:
    server_common(s)  # the server tools' module (/usr/local/lib/<app>), before any of them
if "db" in roles:
    postgresql(s, generated)
barrier(name="Wait for every host's database steps (the database host's certificate exists before it is copied).")
if s["database"]:
    database_client(s)
backups(s)
if "app" in roles:
    releases(s)
if "app" in roles or "lb" in roles:
    nginx(s)
if "app" in roles:
    supervisor(s)
if stack_host:
    monitoring(s)
first_contact(s)
if "lb" in roles:
    # Last: a domain that does not resolve here yet fails only this step, after everything else.
    acme(s)
# Last of all: what each service would load at its next start, whatever this run changed.
loads(s)
