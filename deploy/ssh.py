"""How this workstation reaches a host with the OpenSSH client, from the host's pyinfra data
(ssh_config_file, ssh_key, ssh_user, ssh_port, ssh_known_hosts_file, ...): shared by
scripts/release, scripts/secrets and the deploy's proof that the admin user can log in."""

from pathlib import Path

from deploy.settings import DEFAULTS

REPO = Path(__file__).resolve().parent.parent
#: The pyinfra host data keys that say how to reach a host.
SSH_KEYS = ("ssh_config_file", "ssh_key", "ssh_user", "ssh_port", "ssh_known_hosts_file")
SSH_KEYS += ("ssh_strict_host_key_checking",)


def login_user(data):
    """The user to log in as: the inventory's, but the admin user where it says root (the stack
    closes root's SSH login at first contact, once the admin user has proven it can log in)."""
    user = data.get("ssh_user")
    return (data.get("admin_user") or DEFAULTS["admin_user"]) if user == "root" else user


def ssh_command(data, user=None):
    """``ssh`` argv without the destination, for a host with pyinfra ``data``, as ``user``
    (default: login_user(data)); BatchMode: a refused key fails at once instead of prompting."""
    cmd = ["ssh", "-o", "BatchMode=yes"]
    user = user or login_user(data)
    for key, flag in (("ssh_config_file", "-F"), ("ssh_key", "-i"), ("ssh_port", "-p")):
        if data.get(key):
            value = str(data[key])
            cmd += [flag, str(REPO / value) if key in ("ssh_config_file", "ssh_key") else value]
    if user:
        cmd += ["-l", user]
    if data.get("ssh_known_hosts_file"):
        cmd += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    if data.get("ssh_strict_host_key_checking"):
        cmd += ["-o", f"StrictHostKeyChecking={data['ssh_strict_host_key_checking']}"]
    return cmd
