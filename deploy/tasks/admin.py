"""First contact with a fresh server as root: an admin user with the operator's keys and sudo,
proven over a second SSH connection, and only then no root login (deploy/tasks/ssh.py)."""

import io

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Sha1File
from pyinfra.operations import files, server

from deploy.operations import config_files
from deploy.tasks.ssh import close_root_login


@deploy("First contact")
def first_contact(s):
    """Logged in as root: ensure the admin user (keys, passwordless sudo), prove its login, then close root's."""
    if s["login_user"] != "root":
        return
    admin = s["admin_user"]
    server.user(
        name=f"Ensure the admin user {admin} (a login shell; member of {s['deploy_group']}: may push releases).",
        user=admin,
        shell="/bin/bash",
        groups=[s["deploy_group"]] if "app" in s["roles"] else [],
        append=True,
        create_home=True,
    )
    files.directory(
        name=f"Ensure ~{admin}/.ssh (0700).", path=f"/home/{admin}/.ssh", user=admin, group=admin, mode="700"
    )
    if s["admin_authorized_keys"]:
        keys = "".join(f"{key.strip()}\n" for key in s["admin_authorized_keys"])
        files.put(
            name=f"Ensure {admin}'s authorized keys (admin_authorized_keys).",
            src=io.StringIO(keys),
            dest=f"/home/{admin}/.ssh/authorized_keys",
            user=admin,
            group=admin,
            mode="600",
        )
    else:
        server.shell(
            name=f"Ensure {admin} has root's authorized keys (the key this run logged in with).",
            commands=[
                f"install -m 600 -o {admin} -g {admin} /root/.ssh/authorized_keys /home/{admin}/.ssh/authorized_keys"
            ],
            _if=lambda: (
                host.get_fact(Sha1File, path="/root/.ssh/authorized_keys")
                != host.get_fact(Sha1File, path=f"/home/{admin}/.ssh/authorized_keys")
            ),
        )
    config_files(
        name=f"Ensure {admin} may use sudo without a password (sudoers; visudo -c).",
        files=[("hardening/sudoers.d/admin.j2", f"/etc/sudoers.d/{admin}", "440", s)],
        check="visudo -cqf {}",
    )
    close_root_login(s)
