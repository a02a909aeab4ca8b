"""Host hardening (docs/security.md): SSH, network sysctls, the firewall, security updates. The sshd
drop-in, the move to sshd_port and their login proofs are deploy/tasks/ssh.py's."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, python, server, systemd

from deploy.facts import FirewallLoaded, SysctlDrift
from deploy.operations import config_files, dropin
from deploy.tasks.ssh import finish_ssh_move, sshd_dropin

SYSCTL = "/etc/sysctl.d/90-todo-hardening.conf"


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


@deploy("Hardening")
def hardening(s):
    """Ensure SSH, sysctl, firewall and update controls, each checked before it takes effect."""
    # Logged in as root (first contact): root keeps its key login until deploy/tasks/admin.py has
    # proven the admin user's (deploy/tasks/ssh.py); any other login user means that happened already.
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
            firewall=firewall,
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
