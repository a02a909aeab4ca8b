"""Debian packages of the stack, and apt's patience with an unattended upgrade's lock."""

from pyinfra.api import deploy
from pyinfra.operations import apt, files


@deploy("Packages")
def packages(s):
    """Ensure every Debian package the stack runs on is installed (no recommends)."""
    files.put(
        name="Ensure apt waits for the dpkg lock (an unattended upgrade may hold it).",
        src="hardening/apt.conf.d/90todo-lock-timeout",
        dest="/etc/apt/apt.conf.d/90todo-lock-timeout",
        user="root",
        group="root",
        mode="644",
    )
    base = ["ca-certificates", "netbase", "sudo", "iproute2", "openssl", "nftables", "unattended-upgrades", "logrotate"]
    # fail2ban reads sshd's journal through python3-systemd; needrestart names stale services.
    base += ["fail2ban", "python3-systemd", "needrestart"]
    wanted = list(base)
    if "app" in s["roles"] or "lb" in s["roles"]:
        # Brotli beside gzip: nginx's modules (on the fly, precompressed).
        wanted += ["nginx", "libnginx-mod-http-brotli-filter", "libnginx-mod-http-brotli-static"]
    if "app" in s["roles"]:
        # The release's compressor (its .br copies) and what the instances run on; dbus for the
        # release tool's systemd-run --wait (each build step a transient unit, ended with it).
        wanted += ["brotli", "supervisor", "python3-venv", "libpq5", "git", "dbus"]
    if "db" in s["roles"]:
        wanted += [f"postgresql-{s['postgresql_version']}"]
    apt.packages(
        name="Ensure the Debian packages of this host's roles are installed ("
        + (", ".join(r for r in s["roles"] if r != "backup") or "a backup host")
        + ").",
        packages=wanted,
        no_recommends=True,
        update=True,
        cache_time=3600,
    )
