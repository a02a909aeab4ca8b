"""Host hardening (docs/security.md): SSH, network sysctls, the firewall, security updates."""

import time

from pyinfra import host
from pyinfra.api import StringCommand, deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, python, server, systemd

from deploy.facts import FirewallLoaded, SysctlDrift
from deploy.operations import config_files, dropin
from deploy.ssh import this_host, trust_moved_port, try_login

SSHD_DROPIN = "/etc/ssh/sshd_config.d/10-todo-hardening.conf"
SYSCTL = "/etc/sysctl.d/90-todo-hardening.conf"
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


def firewall(s, name):
    """Ensure the nftables rules (SSH on ``s["ssh_ports"]``, firewall_tcp_ports; nft -c) and load
    them if they changed or were flushed by hand."""
    rules = config_files(
        name=name,
        files=[("hardening/nftables.conf.j2", "/etc/nftables.conf", "755", s)],
        check="nft -c -f {}",
    )
    loaded = systemd.service(
        name="Load the firewall rules: they changed (or were flushed) and are valid.",
        service="nftables",
        running=True,
        reloaded=True,
        # Also when the rules were flushed by hand: the file alone does not show that drift.
        _if=lambda: rules.did_change() or not host.get_fact(FirewallLoaded),
    )
    # A flush by hand took fail2ban's table too: fail2ban still lists its bans but no longer
    # enforces them. A restart makes its table again and bans again from its database.
    systemd.service(
        name="Restart fail2ban: the firewall was loaded again (its table may have gone with a flush).",
        service="fail2ban",
        restarted=True,
        _if=lambda: loaded.did_change() and host.get_fact(File, path="/usr/bin/fail2ban-client") is not None,
    )


def finish_ssh_move(s):
    """Moving SSH (sshd and the firewall on both ports now): prove a new login on ``sshd_port``
    from this workstation (3 tries, 2 s apart), then close the old port; if no login is proven,
    close the new one instead and raise SshPortUnreachable. Runs as nested operations."""
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


@deploy("Hardening")
def hardening(s):
    """Ensure SSH, sysctl, firewall and update controls, each checked before it takes effect."""
    # Logged in as root (first contact): root keeps its key login until deploy/tasks/admin.py has
    # proven the admin user's; any other login user means that happened already.
    first_contact = s["login_user"] == "root"
    s = {**s, "permit_root_login": "prohibit-password" if first_contact else "no"}
    # Moving SSH to sshd_port: first the firewall and sshd open it beside the port of this login.
    opening = {**s, "ssh_ports": [s["login_port"], s["sshd_port"]]} if s["ssh_port_move"] else s
    ports = " and ".join(str(port) for port in opening["ssh_ports"])
    firewall(opening, f"Ensure the firewall rules (nftables, nft -c): inbound SSH ({ports}), HTTP, HTTPS only.")
    sshd_dropin(
        opening,
        f"Ensure the SSH hardening drop-in (port {ports}, keys only, no forwarding, strong algorithms; sshd -t)."
        + (" Root keeps its key login until the admin user is proven." if first_contact else " No root login."),
    )
    if s["ssh_port_move"]:
        python.call(
            name=f"Move SSH from port {s['login_port']} to {s['sshd_port']}: prove a login there, then close "
            f"port {s['login_port']} (if none is proven: close {s['sshd_port']} and stop).",
            function=finish_ssh_move,
            s=s,
        )
    files.file(
        name="Ensure sshd_config is root-only (dev-sec sshd-02).",
        path="/etc/ssh/sshd_config",
        user="root",
        group="root",
        mode="600",
    )

    # The check of a sysctl file is applying it: a refused key leaves the file out of /etc/sysctl.d.
    sysctl = config_files(
        name="Ensure the network sysctl hardening (dev-sec linux-baseline; checked by applying it).",
        files=[("hardening/sysctl.d/90-todo-hardening.conf", SYSCTL, "644", None)],
        check="sysctl -q -p {}",
    )
    server.shell(
        name="Apply the network sysctl hardening: live values differ from the file.",
        commands=[f"sysctl -q -p {SYSCTL}"],
        # The live values, not only the file: writing net.ipv4.ip_forward resets every conf.*.* key.
        _if=lambda: not sysctl.did_change() and bool(host.get_fact(SysctlDrift, path=SYSCTL)),
    )

    systemd.service(name="Ensure the firewall is loaded at boot.", service="nftables", running=True, enabled=True)

    files.put(
        name="Ensure security updates are installed every day (unattended-upgrades).",
        src="hardening/apt.conf.d/20auto-upgrades",
        dest="/etc/apt/apt.conf.d/20auto-upgrades",
        user="root",
        group="root",
        mode="644",
    )
    for timer in ("apt-daily.timer", "apt-daily-upgrade.timer"):
        systemd.service(name=f"Ensure {timer} is enabled.", service=timer, running=True, enabled=True)
    config_files(
        name="Ensure needrestart lists services running replaced libraries, never restarts them (perl -c).",
        files=[("hardening/needrestart/todo.conf", f"/etc/needrestart/conf.d/{s['app_name']}.conf", "644", None)],
        check="perl -c {} 2>/dev/null",
    )

    app = s["app_name"]
    jails = config_files(
        name="Ensure fail2ban's jails: failed SSH logins, nginx's 429 and 444 answers (fail2ban-client --test).",
        files=[
            ("hardening/fail2ban/jail.d/todo.conf.j2", f"/etc/fail2ban/jail.d/{app}.conf", "644", s),
            ("hardening/fail2ban/filter.d/todo-nginx.conf", f"/etc/fail2ban/filter.d/{app}-nginx.conf", "644", None),
        ],
        # --test reads every jail and filter; fail2ban-regex compiles the filter and must match a line.
        check=(
            "fail2ban-client --test >/dev/null && fail2ban-regex "
            '\'{"time":"2026-11-22T10:00:00+00:00","msec":"1795341600.000","remote_addr":"192.0.2.1",'
            '"request_id":"0","host":"x","method":"GET","uri":"/","protocol":"HTTP/1.1","status":"444",'
            '"bytes":"0","referer":"","user_agent":"","upstream":"","upstream_status":"","rt":"0.000",'
            '"urt":"","cache":""}\' '
            f"/etc/fail2ban/filter.d/{app}-nginx.conf | grep -q 'Lines: 1 lines, 0 ignored, 1 matched'"
        ),
    )
    systemd.service(
        name="Reload fail2ban: its jails changed and are valid.",
        service="fail2ban",
        running=True,
        reloaded=True,
        _if=jails.did_change,
    )
    dropin("fail2ban.service", s)
    systemd.service(name="Ensure fail2ban is running and enabled.", service="fail2ban", running=True, enabled=True)
