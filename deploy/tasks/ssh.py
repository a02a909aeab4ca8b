"""SSH on the host, and the logins that prove it from this workstation before anything is locked:
the one owner of the in-run login proofs. The hardening drop-in (sshd -t, reloaded, and a new login
must still work, else it is undone), moving SSH to sshd_port (a login on the new port, then the old
one closes), and at first contact as root, the admin user's login and sudo before root's login closes.
Called from deploy/tasks/hardening.py and deploy/tasks/admin.py where those steps run."""

import os
import subprocess
import time

from pyinfra import host
from pyinfra.api import StringCommand
from pyinfra.operations import python, systemd

from deploy.operations import config_files
from deploy.ssh import SSH_KEYS, ssh_command, try_login

SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-todo-hardening.conf"
# sshd checks a drop-in only through a main config that includes it: this one reads the new copy
# first (sshd keeps the first value it reads), then the real configuration.
SSHD_CHECK = (
    "printf 'Include {}\\nInclude /etc/ssh/sshd_config\\n' > {}.main && sshd -t -f {}.main; "
    "rc=$?; rm -f {}.main; exit $rc"
)


class LoginLost(RuntimeError):
    """After sshd's configuration changed, this run's own login no longer worked: it was undone."""


class SshPortUnreachable(RuntimeError):
    """Moving SSH: no login could be proven on the new port; sshd and the firewall are back on the old one."""


class AdminLoginFailed(RuntimeError):
    """The admin user could not log in and sudo: root's login was left as it was."""


def this_host(port=None):
    """The current pyinfra host's SSH data and destination, for try_login (plain values, not
    HostData); with ``port``, the data dial that port instead (SSH moved by this run)."""
    data = {key: host.data.get(key) for key in SSH_KEYS}
    if port:
        data["ssh_port"] = port
    return data, host.data.get("ssh_hostname") or host.name


def known_hosts_name(destination, port):
    """How known_hosts names ``destination`` reached on ``port``: ``HOST`` on 22, else ``[HOST]:PORT``."""
    return destination if int(port or 22) == 22 else f"[{destination}]:{port}"


def trust_moved_port(data, destination, old, new):
    """On this workstation: copy the host keys known for ``destination`` on port ``old`` to port
    ``new`` in the known_hosts file ssh uses for it (``ssh -G``), so a login on the new port checks
    the same, already trusted keys (OpenSSH names a host on another port ``[HOST]:PORT`` and would
    refuse it as unknown). Returns the entries added (none when there are none to copy)."""
    cmd = [*ssh_command({**data, "ssh_port": old}), "-G", destination]
    config = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.splitlines()
    option = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in config if " " in line}
    files = option.get("userknownhostsfile", "").split()
    if not files or files[0] == "/dev/null":
        return []
    path = os.path.expanduser(files[0])
    if option.get("hostkeyalias"):
        return []  # ssh checks the alias's keys whatever the port
    # known_hosts names the host by the HostName an alias (ssh_config's Host, e.g. "default") stands for.
    destination = option.get("hostname") or destination

    def keys(port):
        found = subprocess.run(
            ["ssh-keygen", "-F", known_hosts_name(destination, port), "-f", path],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        return {tuple(line.split()[1:3]) for line in found.splitlines() if line and line[0] not in "#@"}

    added = [f"{known_hosts_name(destination, new)} {kind} {key}\n" for kind, key in keys(old) - keys(new)]
    if added:
        with open(path, "a", encoding="ascii") as known:
            known.writelines(sorted(added))
    return added


def proven(data, destination, user, port=None, tries=3):
    """On this workstation: (argv, CompletedProcess) of a new SSH login as ``user``, tried up to
    ``tries`` times 2 s apart (sshd re-executes itself on a reload). With ``port``, the login
    must have reached sshd on that port as the server sees it (SSH_CONNECTION), not a port
    forwarded to another one (NAT, Vagrant)."""
    for attempt in range(tries):
        cmd, proof = try_login(data, destination, user, 'echo "$SSH_CONNECTION"')
        fields = proof.stdout.split()
        if proof.returncode == 0 and port and (len(fields) != 4 or fields[3] != str(port)):
            proof.returncode, proof.stderr = 1, f"the login reached sshd's port {fields[3:]}, not {port} (NAT?)"
        if proof.returncode == 0 or attempt == tries - 1:
            return cmd, proof
        time.sleep(2)


def prove_login(user, data, destination, ports):
    """On this workstation: a new SSH login as ``user`` (this run's login user) must still work
    after sshd changed (e.g. a key the new algorithms refuse). If not, put a drop-in with only
    the ``ports`` the firewall lets in (Debian's sshd settings otherwise, as before the stack's
    hardening), reload sshd and stop the run."""
    cmd, proof = proven(data, destination, user)
    if proof.returncode != 0:
        lines = "".join(f"Port {port}\\n" for port in ports)
        undo = f"printf '{lines}' > {SSHD_DROPIN} && chmod 600 {SSHD_DROPIN} && systemctl reload ssh"
        host.run_shell_command(StringCommand(undo), _sudo=user != "root")
        raise LoginLost(
            f"`{' '.join(cmd)}` exited {proof.returncode} after sshd's hardening: {proof.stderr.strip()[-400:]}. "
            f"The drop-in now holds only the SSH port(s) {ports} and sshd was reloaded; log in with an ed25519 "
            "key (or RSA >= 3072 bits), run again."
        )


def sshd_dropin(s, name, user=None, port=None):
    """Ensure the SSH hardening drop-in (checked with sshd -t; listening on ``s["ssh_ports"]``),
    reload sshd if it changed, and prove that ``user`` (default: this run's login user) can still
    log in, on ``port`` (default: where this run connected), else undo it."""
    sshd = config_files(
        name=name,
        files=[("hardening/sshd_config.d/10-todo-hardening.conf.j2", SSHD_DROPIN, "600", s)],
        check=SSHD_CHECK,
    )
    systemd.service(
        name="Reload sshd: its configuration changed and is valid.",
        service="ssh",
        reloaded=True,
        _if=sshd.did_change,
    )
    user = user or s["login_user"]
    data, destination = this_host(port)
    python.call(
        name=f"Prove that {user} can still log in over a new SSH connection (else undo the drop-in).",
        function=prove_login,
        user=user,
        data=data,
        destination=destination,
        ports=s["ssh_ports"],
        _if=sshd.did_change,
    )


def prove_admin_login(user, data, destination):
    """On this workstation: log in as ``user`` over a new SSH connection and run ``sudo -n true``."""
    cmd, proof = try_login(data, destination, user, "sudo", "-n", "true")
    if proof.returncode != 0:
        raise AdminLoginFailed(
            f"`{' '.join(cmd)}` exited {proof.returncode}: {proof.stderr.strip()[-500:]}. Root can still log in "
            f"(PermitRootLogin prohibit-password); fix admin_authorized_keys or the key you use, then provision again."
        )


def finish_ssh_move(s, firewall):
    """Moving SSH (sshd and the firewall on both ports now): prove a new login on ``sshd_port``
    from this workstation (3 tries, 2 s apart), then close the old port; if no login is proven,
    close the new one instead and raise SshPortUnreachable. Runs as nested operations; ``firewall``
    is deploy/tasks/hardening.py's (which imports this module)."""
    old, new = s["login_port"], s["sshd_port"]
    data, destination = this_host(new)
    trust_moved_port(data, destination, this_host()[0].get("ssh_port") or old, new)
    cmd, proof = proven(data, destination, s["login_user"], port=new)
    kept = new if proof.returncode == 0 else old
    final = {**s, "ssh_ports": [kept]}
    sshd_dropin(final, f"sshd listens on port {kept} only.", port=new if kept == new else None)
    firewall(final, f"The firewall lets SSH in on port {kept} only.")
    if kept == old:
        raise SshPortUnreachable(
            f"no login on port {new}: `{' '.join(cmd)}` exited {proof.returncode}: {proof.stderr.strip()[-300:]}. "
            f"SSH stays on port {old}. Is port {new} blocked before the server (a provider's firewall)?"
        )
    user = s["admin_user"] if s["login_user"] == "root" else s["login_user"]
    print(f"\n    SSH moved from port {old} to {new}. From now on: {user}@{destination}:{new} (ssh_port {new})\n")


def close_root_login(s):
    """First contact, the admin user made: prove that it logs in and uses sudo over a new SSH
    connection (else AdminLoginFailed, root's login left as it was), then close root's SSH login
    and say how to log in from now on."""
    admin = s["admin_user"]
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
