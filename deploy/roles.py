"""Roles: which parts of the stack a host of the inventory holds, from pyinfra groups.

An inventory names roles with module-level lists (pyinfra groups) called ``lb``, ``app``,
``db`` and ``backup``; a host listed in several groups holds each of those roles. An
inventory that names none (``hosts = [...]``: local.py, vagrant.py, example.py) makes every
host a whole stack, with its backup repository on its own disk: today's single server.

What is built:
- ``lb``: nginx with TLS, the limits and the caches; on a host of its own, it load-balances over
  the app hosts' nginx on the private network (``app_port``), with passive health checks;
- ``app`` on one host or several: nginx and the gunicorn instances; an app host behind a load
  balancer apart admits only the load balancer, on its private address;
- ``db`` on an app host or on its own: PostgreSQL on the private network, TLS with a pinned
  certificate and scram-sha-256 for the other app hosts' addresses only (deploy/tasks/postgresql.py);
- ``backup`` on the database host (its own disk) or on a host of its own: pgBackRest's
  repository host, reached over SSH, so the backups survive the loss of the database server
  (deploy/tasks/backups.py).
One load balancer and one database host: several of either are refused with a SettingError.
"""

import ipaddress

#: The roles, in the order the deploy meets them.
ROLES = ("lb", "app", "db", "backup")


def declared(inventory):
    """True when the inventory names any role group (non-empty)."""
    return any(inventory.get_group(role, []) for role in ROLES)


def roles_of(h, inventory):
    """The roles of host ``h``: its role groups, or all of them when the inventory names none."""
    if not declared(inventory):
        return ROLES
    return tuple(role for role in ROLES if role in h.groups)


def address(h):
    """The address the stack's other hosts reach ``h`` on: its ``private_address``, else its
    ``ssh_hostname`` or name when that is an IP address. Raises SettingError otherwise."""
    from deploy.settings import SettingError

    given = h.data.get("private_address")
    for value in (given,) if given else (h.data.get("ssh_hostname"), h.name):
        try:
            # IPv4: the firewall's rules for peers are written for it (ip saddr).
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            pass
    if given:
        raise SettingError(f"inventory: {h.name}: private_address must be an IPv4 address, not {given!r}")
    raise SettingError(f"inventory: {h.name}: set private_address (the address the other hosts reach it on)")


def topology(h, inventory):
    """This host's roles and its peers, checked: a dict with

    + ``roles``: the roles of this host;
    + ``backup_peer``: the repository host's (name, address) when this database host's backups go
      to another host, else None;
    + ``db_peer``: on a repository host, the database host's (name, address), else None;
    + ``database``: on an app host whose database is on another host, that host's (name, address),
      else None (PostgreSQL is on this host, over its unix socket);
    + ``db_clients``: on the database host, the addresses of the app hosts apart from it;
    + ``app_hosts``: on the load balancer, when its app is not (only) on itself, the app hosts'
      (name, address), in inventory order (its upstream); else [] (the instances' unix sockets);
    + ``lb_addresses``: on an app host behind a load balancer apart (or behind one that balances
      over several app hosts), the load balancer's address: the only client of its nginx; else [].

    Raises SettingError (naming the host) for a host in no role group, not exactly one load balancer
    or database host, no app host, more than one backup host, or a backup host that serves more than
    one database host.
    """
    from deploy.settings import SettingError

    roles = roles_of(h, inventory)
    topo = {"roles": roles, "backup_peer": None, "db_peer": None, "database": None, "db_clients": [],
            "app_hosts": [], "lb_addresses": []}  # fmt: skip
    if not declared(inventory):
        return topo
    for other in inventory:
        if not roles_of(other, inventory):
            raise SettingError(f"inventory: {other.name} is in no role group ({', '.join(ROLES)})")
    lbs, apps, dbs, backups = (inventory.get_group(role, []) for role in ROLES)
    if len(lbs) != 1:
        raise SettingError(f"inventory: one load balancer (group lb), not {len(lbs)}")
    if len(dbs) != 1:
        raise SettingError(f"inventory: one database host (group db), not {len(dbs)}")
    if not apps:
        raise SettingError("inventory: no app host (group app)")
    lb, db = lbs[0], dbs[0]
    if [a.name for a in apps] != [lb.name]:
        if h.name == lb.name:
            topo["app_hosts"] = [(a.name, address(a)) for a in apps]
        if "app" in roles:
            topo["lb_addresses"] = [address(lb)]
    if "app" in roles and h.name != db.name:
        topo["database"] = (db.name, address(db))
    if h.name == db.name:
        topo["db_clients"] = [address(a) for a in apps if a.name != db.name]
    if len(backups) > 1:
        raise SettingError(f"inventory: one backup host at most, not {len(backups)}")
    repo = backups[0] if backups else None
    if repo is not None and "db" not in roles_of(repo, inventory):
        if h.name == db.name:
            topo["backup_peer"] = (repo.name, address(repo))
        if h.name == repo.name:
            topo["db_peer"] = (db.name, address(db))
    return topo
