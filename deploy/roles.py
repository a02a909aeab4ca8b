"""Roles: which parts of the stack a host of the inventory holds, from pyinfra groups.

An inventory names roles with module-level lists (pyinfra groups) called ``lb``, ``app``,
``db`` and ``backup``; a host listed in several groups holds each of those roles. An
inventory that names none (``hosts = [...]``: local.py, vagrant.py, example.py) makes every
host a whole stack, with its backup repository on its own disk: today's single server.

What is built: a host holding ``lb``, ``app`` and ``db`` together (the stack), and, beside it,
one host holding only ``backup``: pgBackRest's repository host, reached over SSH, so that the
backups survive the loss of the database server (deploy/tasks/backups.py). Putting lb, app
and db on different hosts is refused with a SettingError until that split is built.
"""

import ipaddress

#: The roles, in the order the deploy meets them.
ROLES = ("lb", "app", "db", "backup")
#: The roles that, for now, go together on one host.
STACK = ("lb", "app", "db")


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
    """This host's roles and its peers, checked: a dict with ``roles``, ``backup_peer`` (the
    repository host's (name, address) when the database's backups go to another host, else
    None) and ``db_peer`` (on a repository host: the database host's (name, address)).

    Raises SettingError (naming the host) for a host in no role group, lb/app/db split over
    hosts, more than one backup host, or a backup host that serves more than one database host.
    """
    from deploy.settings import SettingError

    roles = roles_of(h, inventory)
    topo = {"roles": roles, "backup_peer": None, "db_peer": None}
    if not declared(inventory):
        return topo
    for other in inventory:
        held = roles_of(other, inventory)
        if not held:
            raise SettingError(f"inventory: {other.name} is in no role group ({', '.join(ROLES)})")
        if any(role in held for role in STACK) and not all(role in held for role in STACK):
            raise SettingError(
                f"inventory: {other.name} holds {', '.join(r for r in STACK if r in held)} without the others: "
                "lb, app and db go on the same host (several hosts for them are not built yet)"
            )
    backups, dbs = inventory.get_group("backup", []), inventory.get_group("db", [])
    if len(backups) > 1:
        raise SettingError(f"inventory: one backup host at most, not {len(backups)}")
    repo = backups[0] if backups else None
    if repo is not None and "db" not in roles_of(repo, inventory):
        if len(dbs) != 1:
            raise SettingError(f"inventory: the backup host {repo.name} serves one database host, not {len(dbs)}")
        if "db" in roles:
            topo["backup_peer"] = (repo.name, address(repo))
        if h.name == repo.name:
            topo["db_peer"] = (dbs[0].name, address(dbs[0]))
    return topo
