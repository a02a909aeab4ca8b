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
    if "app" not in s["roles"]:
        apt.packages(
            name="Ensure the base packages of a hardened host are installed (a backup host).",
            packages=base,
            no_recommends=True,
            update=True,
            cache_time=3600,
        )
        return
    apt.packages(
        name="Ensure nginx, supervisor, PostgreSQL, Python and the release tool's needs are installed.",
        packages=["nginx", "supervisor", f"postgresql-{s['postgresql_version']}", "python3-venv", "libpq5", "git"]
        + base
        # Brotli beside gzip: nginx's modules (on the fly, precompressed) and the release's compressor.
        + ["libnginx-mod-http-brotli-filter", "libnginx-mod-http-brotli-static", "brotli"],
        no_recommends=True,
        update=True,
        cache_time=3600,
    )
