"""Seeing the stack: the status and logs tools (scripts/status, scripts/logs), and, with the ``monitoring`` setting,
Prometheus with Debian's exporters (node, nginx, PostgreSQL), every app's request metrics from
nginx's access log (mtail, monitoring/web.mtail), the app's own metrics (if it has them,
``metrics_path``) through nginx's loopback metrics server, and the alert rules
(monitoring/alerts.yml, checked with promtool). Everything listens on the loopback only; the
firewall opens none of it."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd

from deploy.facts import PostgresValue
from deploy.operations import config_files, dropin, server_tool, timer

#: node_exporter's textfile collector directory: Debian's default, named to be sure.
TEXTFILE_DIR = "/var/lib/prometheus/node-exporter"
#: mtail's port (its default), on the loopback.
MTAIL_PORT = 3903


def exporters(s):
    """{Debian package: the variables of its /etc/default file}: Prometheus and its exporters on
    loopback addresses. The flags are the packaged versions' (Prometheus 2.42, node_exporter 1.5,
    nginx-prometheus-exporter 0.11, postgres_exporter 0.11, mtail 3.0.0~rc50, whose unit reads
    LOGS, HOST, PORT and EXTRA_ARGS)."""
    return {
        "prometheus-node-exporter": {
            "ARGS": f"--web.listen-address=127.0.0.1:9100 --collector.textfile.directory={TEXTFILE_DIR}"
        },
        "prometheus-nginx-exporter": {
            "ARGS": f"-nginx.scrape-uri=http://127.0.0.1:{s['metrics_port']}/stub_status "
            "-web.listen-address=127.0.0.1:9113"
        },
        # Peer authentication on the local socket as the exporter's own user (pg_hba.conf).
        "prometheus-postgres-exporter": {
            "DATA_SOURCE_NAME": "user=prometheus host=/run/postgresql dbname=postgres",
            "ARGS": "--web.listen-address=127.0.0.1:9187",
        },
        # nginx's access log, read by mtail's programs in /etc/mtail (the adm group's: its drop-in).
        # No "prog" label: one program, and the alert rules need not name it.
        "mtail": {
            "LOGS": "/var/log/nginx/access.log",
            "HOST": "127.0.0.1",
            "PORT": str(MTAIL_PORT),
            "EXTRA_ARGS": "--emit_prog_label=false",
        },
        "prometheus": {
            "ARGS": "--web.listen-address=127.0.0.1:9090 "
            f"--storage.tsdb.retention.time={s['prometheus_retention_days']}d"
        },
    }


def unit_known(unit):
    """True when systemd has ``unit``'s file (a timer the deploy wrote, once)."""
    return host.get_fact(File, path=f"/etc/systemd/system/{unit}") is not None or not unit.endswith(".timer")


def units(s):
    """The systemd units the status tool expects active on this host."""
    names = ["nginx.service", "supervisor.service"] if "app" in s["roles"] else []
    names += [f"postgresql@{s['postgresql_version']}-main.service"] if "db" in s["roles"] else []
    names += ["nftables.service", "fail2ban.service"]
    if "db" in s["roles"] and not s["backup_peer"]:  # else the backup host runs the backups
        names += [f"{s['app_name']}-backup-{kind}.timer" for kind in ("full", "diff")]
    if s["monitoring"]:
        names += [f"{package}.service" for package in exporters(s)] + [f"{s['app_name']}-status-metrics.timer"]
    if s["tls_acme_email"]:
        names.append("certbot.timer")
    return names


def status_settings(s):
    """What the status tool reads on the server (/etc/<app>/status.json)."""
    return {
        "app_name": s["app_name"],
        "instances": s["instance_names"] if "app" in s["roles"] else [],
        "srv": s["srv"],
        "run_dir": s["run"],
        "access_log": "/var/log/nginx/access.log",
        "tls_cert": s["tls_cert"],
        "units": units(s),
        "backups": "db" in s["roles"],
        "disk_paths": ["/", "/var/lib/postgresql"] if "db" in s["roles"] else ["/"],
        "disk_warn_percent": 90,
        "cert_warn_days": 14,
        "memory_warn_percent": 90,
        "error_ratio_warn": 0.05,
        # Firing alerts are shown (and need attention) when Prometheus runs here.
        "prometheus": "http://127.0.0.1:9090" if s["monitoring"] else None,
    }


@deploy("Monitoring")
def monitoring(s):
    """Ensure the status tool; with ``monitoring``, Prometheus, the exporters and the alert rules."""
    app = s["app_name"]
    server_tool(s, "status", status_settings(s))
    server_tool(s, "logs")
    if not s["monitoring"]:
        # Turned off on a server that had it: stopped and disabled (nginx's metrics server and the
        # exporter's PostgreSQL role's access are gone, so its targets would look down and page).
        installed = host.get_fact(DebPackages)
        for unit in [f"{app}-status-metrics.timer", *(f"{package}.service" for package in exporters(s))]:
            if unit.endswith(".timer") or unit.removesuffix(".service") in installed:
                systemd.service(name=f"Ensure {unit} is stopped and disabled (monitoring is off).", service=unit,
                                running=False, enabled=False, _if=lambda unit=unit: unit_known(unit))  # fmt: skip
        return

    apt.packages(
        name="Ensure Prometheus and its exporters (node, nginx, PostgreSQL, mtail) are installed.",
        packages=list(exporters(s)),
        no_recommends=True,
    )
    server.shell(
        name="Ensure PostgreSQL's exporter has its role, prometheus (pg_monitor: statistics only, no data).",
        commands=[
            "runuser -u postgres -- psql -v ON_ERROR_STOP=1 -c 'CREATE ROLE prometheus LOGIN IN ROLE pg_monitor'"
        ],  # noqa: E501
        _if=lambda: (
            host.get_fact(
                PostgresValue, database="postgres", sql="SELECT count(*) FROM pg_roles WHERE rolname = 'prometheus'"
            )
            == "0"
        ),
    )
    # Prometheus's files before its service restarts (the rules file must exist for its check).
    config = config_files(
        name="Ensure Prometheus's scrape targets and the stack's alert rules (promtool check config).",
        files=[
            ("monitoring/prometheus.yml.j2", "/etc/prometheus/prometheus.yml", "644", {**s, "mtail_port": MTAIL_PORT}),
            ("monitoring/alerts.yml", f"/etc/prometheus/{app}-alerts.yml", "644", None),
        ],
        check="promtool check config /etc/prometheus/prometheus.yml >/dev/null",
    )
    # mtail's program before mtail (re)starts; compiled in a directory of its own first.
    program = config_files(
        name="Ensure mtail's program for nginx's access log (mtail --compile_only).",
        files=[("monitoring/web.mtail", f"/etc/mtail/{app}-web.mtail", "644", None)],
        check='d=$(mktemp -d) && cp {} "$d/web.mtail" && mtail --compile_only --logtostderr --progs "$d" '
        '>/dev/null; rc=$?; rm -rf "$d"; exit $rc',
    )
    restarted = {}
    for package, env in exporters(s).items():
        defaults = files.template(
            name=f"Ensure {package} listens on the loopback only (/etc/default/{package}).",
            src="monitoring/exporter.default.j2",
            dest=f"/etc/default/{package}",
            user="root",
            group="root",
            mode="644",
            unit=package,
            env=env,
        )
        changed = [defaults]
        if package in ("prometheus-nginx-exporter", "mtail"):
            changed.append(dropin(f"{package}.service", s))
        # reset-failed: an exporter that failed at its first start (the package starts it with
        # Debian's settings, e.g. nginx's exporter on port 8080) is in its start limit.
        restarted[package] = server.shell(
            name=f"Restart {package}: its settings changed.",
            commands=[f"systemctl reset-failed {package}.service 2>/dev/null || true", f"systemctl restart {package}"],
            _if=lambda changed=changed: any(op.did_change() for op in changed),
        )
        systemd.service(name=f"Ensure {package} is running and enabled.", service=package, running=True, enabled=True)
    systemd.service(
        name="Reload mtail: its program changed and compiles (SIGHUP: it loads /etc/mtail again).",
        service="mtail",
        reloaded=True,
        _if=lambda: program.did_change() and not restarted["mtail"].did_change(),
    )
    systemd.service(
        name="Reload Prometheus: its configuration or rules changed and are valid.",
        service="prometheus",
        reloaded=True,
        _if=lambda: config.did_change() and not restarted["prometheus"].did_change(),
    )

    files.directory(name=f"Ensure {TEXTFILE_DIR} (node_exporter's textfile collector).", path=TEXTFILE_DIR,
                    user="root", group="root", mode="755")  # fmt: skip
    timer(f"{app}-status-metrics", "status-metrics", {**s, "textfile_dir": TEXTFILE_DIR},
          "the status as metrics every 15 s")  # fmt: skip
