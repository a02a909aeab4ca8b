"""First contact with a fresh server as root: an admin user with the operator's keys and sudo,
proven over a second SSH connection, and only then no root login (deploy/tasks/hardening.py)."""

import io

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import Sha1File
from pyinfra.operations import files, python, server

from deploy.operations import config_files
from deploy.ssh import this_host, try_login
from deploy.tasks.hardening import sshd_dropin


class AdminLoginFailed(RuntimeError):
    """The admin user could not log in and sudo: root's login was left as it was."""


def prove_admin_login(user, data, destination):
    """On this workstation: log in as ``user`` over a new SSH connection and run ``sudo -n true``."""
    cmd, proof = try_login(data, destination, user, "sudo", "-n", "true")
    if proof.returncode != 0:
        raise AdminLoginFailed(
            f"`{' '.join(cmd)}` exited {proof.returncode}: {proof.stderr.strip()[-500:]}. Root can still log in "
            f"(PermitRootLogin prohibit-password); fix admin_authorized_keys or the key you use, then provision again."
        )


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
    moved = s["sshd_port"] if s["ssh_port_move"] else None  # SSH moved to sshd_port earlier in this run
    data, destination = this_host(moved)
    python.call(
        name=f"Prove that {admin}@{destination} can log in and use sudo (a second SSH connection).",
        function=prove_admin_login,
        user=admin,
        data=data,
        destination=destination,
    )
    sshd_dropin({**s, "permit_root_login": "no"}, "Close root's SSH login: the admin user is proven.", admin, moved)
    port = moved or data.get("ssh_port")
    target = f"{admin}@{destination}" + (f":{port}" if port and int(port) != 22 else "")
    python.call(
        name=f"From now on, log in as {admin}: scripts/provision {target}",
        function=lambda: print(f"\n    Root can no longer log in. From now on: {target}\n"),
    )
