"""Deploy settings: the defaults, one line each, overridable per host or group in the inventory
(or for one run: ``scripts/provision --set KEY=VALUE``). ``stack()`` is the one place every task
and template reads them from, with the paths derived from ``app_name``."""

import ipaddress
import re

DEFAULTS = {
    # The one name: system user, /srv/<app>, /etc/<app>, /var/log/<app>, supervisor program, nginx site, DB role+db.
    "app_name": "todo",
    # gunicorn instances (each a master with its workers) behind the nginx upstream.
    "instances": 2,
    # Workers per instance; None: (2 x cores + 1) split over the instances, at least 2 (gunicorn docs, "design").
    "workers_per_instance": None,
    # Names nginx answers to; None: the host's address from the inventory. Others get 444.
    "server_names": None,
    # Largest request body, bytes; nginx client_max_body_size and Flask MAX_CONTENT_LENGTH agree.
    "max_body_bytes": 16 * 1024,
    # Todos per page of the list (keyset pagination: a page costs the same at any table size).
    "page_size": 50,
    # Seconds nginx's microcache (and browsers) keep GET /api/todos.
    "api_cache_seconds": 1,
    # Seconds to wait for an instance's health_path after (re)starting it.
    "health_timeout": 30,
    # --- The app (docs/your-app.md). Where it is in the repository a release ships: a folder
    # ("app": the sample app in this repo), or "" for an app at the top of its own repository.
    "app_root": "app",
    # The WSGI entry point (gunicorn's MODULE:APP, e.g. "myapp:create_app()"); None: the Procfile's
    # web: line, else wsgi.py's or app.py's ``app`` (Flask's conventions).
    "wsgi_app": None,
    # The command run once per release, after its build and before it serves (migrations, e.g.
    # "flask db upgrade"); None: the Procfile's release: line, if any.
    "release_command": None,
    # Process types besides web: {TYPE: COUNT} for the Procfile's (each declared type runs 1 by
    # default; 0 runs none), or {TYPE: {"command": CMD, "count": N}} for an app without a Procfile.
    "processes": {},
    # The path that answers 200 when an instance can serve (checked before its socket opens to
    # nginx and before a release goes on): the sample app's /healthz, which checks its database.
    "health_path": "/healthz",
    # gunicorn's worker class (sync, gthread, gevent...); None: the Procfile's, else sync.
    "worker_class": None,
    # The app's static folder inside the release, served by nginx at static_url_path; None: Flask's
    # default, static/ beside the app's package (found at build time); "" serves none from disk.
    "static_folder": None,
    "static_url_path": "/static",
    # Paths inside the release kept across releases (Capistrano's linked_dirs): uploads, an instance
    # folder, a SQLite file's directory. Each is a link to /var/lib/<app>/shared/<path>, the app's.
    "shared_dirs": [],
    # The app's own environment variables (not secrets: those go in with scripts/config).
    "app_environment": {},
    # Client addresses or CIDRs that still reach the app in maintenance mode (scripts/maintenance).
    "maintenance_allow": [],
    # Seconds to wait for nginx's old workers to finish their requests before an instance stops.
    "drain_timeout": 30,
    # Releases kept under /srv/<app>/releases (the current one always among them).
    "keep_releases": 5,
    # The branch of /srv/<app>/deploy.git whose pushes are released.
    "deploy_branch": "main",
    # TLS certificate (PEM, with its chain) and key on the workstation, uploaded to the host;
    # None: a self-signed certificate generated on the host for server_names (kept afterwards).
    "tls_certificate": None,
    "tls_certificate_key": None,
    # An ACME certificate (Let's Encrypt or another ACME CA) for the DNS names among server_names:
    # the account's e-mail; None: no ACME. certbot (Debian) in webroot mode behind the running
    # nginx, renewed by certbot.timer; the key is made on the server and never leaves it.
    "tls_acme_email": None,
    # The ACME directory URL (RFC 8555): Let's Encrypt's production one by default.
    "tls_acme_server": "https://acme-v02.api.letsencrypt.org/directory",
    # A PEM file on the workstation: the CA of the ACME server's own HTTPS certificate, for a
    # private or test ACME server (pebble); None: the system's trusted CAs.
    "tls_acme_ca_bundle": None,
    # POSTs per second per client address nginx lets through, and the burst above that rate
    # answered at once before 429s begin. GET and HEAD are never limited.
    "post_rate_per_second": 5,
    "post_burst": 20,
    # Client addresses or CIDRs exempt from the POST rate limit (e.g. a load generator).
    "rate_limit_exempt": [],
    # Inbound TCP ports the firewall (nftables) lets through besides SSH's (sshd_port): HTTP, HTTPS
    # (on a host without the lb role, e.g. a backup host: none unless set).
    "firewall_tcp_ports": [80, 443],
    # The port sshd listens on (and the firewall opens for SSH); None: the port this run logged
    # in on, so a run never moves it by itself. Set another to move SSH without a lockout: the
    # firewall opens it, sshd listens on both, a new login on it is proven, then the old one closes.
    # (Not pyinfra's ssh_port, which is where this workstation connects: during a move they differ.)
    "sshd_port": None,
    # Addresses or CIDRs fail2ban never bans (loopback never is), e.g. your office or a load generator.
    "fail2ban_ignore": [],
    # Seconds a client stays banned after 5 failed SSH logins in 10 minutes, or after nginx
    # answered it 429 (rate limit) or 444 (unknown Host) 60 times in a minute.
    "fail2ban_bantime": 3600,
    # Backups (pgBackRest, deploy/tasks/backups.py). Seconds after which a database that wrote
    # anything ships its current WAL segment (PostgreSQL's archive_timeout): the most a restore
    # loses when the server is lost.
    "backup_archive_timeout": 60,
    # When full and differential backups run (systemd OnCalendar, systemd.time(7)).
    "backup_full_schedule": "Sun *-*-* 01:15:00",
    "backup_diff_schedule": "Mon..Sat *-*-* 01:15:00",
    # Full backups kept, each with its differential backups and the WAL after it.
    "backup_retention_full": 2,
    # Seconds after which the newest backup counts as late (todo-backup status warns): a day
    # between the differential backups, plus 2 hours.
    "backup_max_age": 93600,
    # Monitoring (deploy/tasks/monitoring.py): Prometheus and Debian's exporters on this server, all
    # on the loopback, with the stack's alert rules; False: none of them (scripts/status stays).
    "monitoring": True,
    # The port of nginx's loopback-only server for Prometheus: stub_status and each instance's own
    # metrics (metrics_path).
    "metrics_port": 9180,
    # The path where each instance serves the app's own Prometheus metrics (the sample app's
    # per-endpoint counters), scraped as one target per instance. Request
    # counts and latencies for any app come from nginx's access log either way (mtail).
    # "" (not None, which means the default here): the app has none.
    "metrics_path": "/metrics",
    # Days Prometheus keeps its samples (--storage.tsdb.retention.time).
    "prometheus_retention_days": 15,
    # An Alertmanager ("HOST:PORT") Prometheus sends firing alerts to, which routes them to
    # people (mail, chat, pager); None: alerts show on Prometheus's alerts page and in scripts/status.
    "alertmanager": None,
    # The address the stack's other hosts (e.g. the backup host) reach this one on, in an
    # inventory with role groups (deploy/roles.py); None: the inventory's address, if it is an IP.
    "private_address": None,
    # The port an app host's nginx listens on, on its private address, for the load balancer
    # only, when the load balancer is on another host or balances over several app hosts.
    "app_port": 8080,
    # Debian 12 ships PostgreSQL 15.
    "postgresql_version": 15,
    # Provisioning as root (a fresh VPS): the sudo user it makes and proves before closing root's SSH login.
    "admin_user": "admin",
    # Public keys (lines of authorized_keys) for admin_user; None: root's authorized_keys on the server.
    "admin_authorized_keys": None,
}

#: Settings that are whole numbers of at least 1 (counts, seconds, bytes).
POSITIVE_INTS = ("instances", "max_body_bytes", "health_timeout", "drain_timeout", "keep_releases", "page_size",
                 "api_cache_seconds", "post_rate_per_second", "post_burst", "postgresql_version", "fail2ban_bantime",
                 "backup_archive_timeout", "backup_retention_full", "backup_max_age",
                 "prometheus_retention_days")  # fmt: skip

#: systemd.time(7)'s shorthand calendar events.
CALENDAR_SHORTHANDS = ("minutely", "hourly", "daily", "weekly", "monthly", "quarterly", "semiannually", "yearly",
                       "annually")  # fmt: skip
#: Weekday names systemd.time(7) takes (either form, any case), numbered for its ranges (Mon..Fri).
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
WEEKDAYS = {name: n for n, day in enumerate(DAY_NAMES) for name in (day, day[:3])}
#: A DNS label (RFC 1123 2.1: letters, digits, hyphens; 1-63, no hyphen first or last), lower-case.
DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"

#: Settings the release tool reads on the server (/etc/<app>/release.json).
RELEASE_SETTINGS = ("app_name", "instances", "keep_releases", "health_timeout", "drain_timeout", "deploy_branch",
                    "database_host", "database_sslrootcert", "app_root", "wsgi_app", "release_command", "processes",
                    "health_path", "worker_class", "static_folder", "shared_dirs")  # fmt: skip


class SettingError(ValueError):
    """A setting in the inventory has a value the stack cannot use; the message names it."""


def setting(name):
    """Return a setting for the current host: inventory data first, then DEFAULTS."""
    from pyinfra import host

    value = host.data.get(name)
    return DEFAULTS[name] if value is None else value


def _positive_int(name, value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise SettingError(f"inventory: {name} must be a whole number of at least 1, not {value!r}")
    return number


def _port(name, value):
    number = _positive_int(name, value)
    if number > 65535:
        raise SettingError(f"inventory: {name} must be a TCP port (1-65535), not {value!r}")
    return number


def workers_per_instance(cores, instances, explicit=None):
    """Workers per gunicorn instance for a host with ``cores`` CPUs and ``instances`` instances."""
    if explicit:
        return _positive_int("workers_per_instance", explicit)
    return max(2, -(-(2 * cores + 1) // instances))


def _git_ref_ok(ref):
    """Whether ``ref`` is a refname by the ten rules of git-check-ref-format(1)."""
    parts = ref.split("/")
    return not (
        any(part.startswith(".") or part.endswith(".lock") for part in parts)  # 1
        or len(parts) < 2  # 2
        or ".." in ref  # 3
        or re.search(r"[\x00-\x20\x7f~^:?*\[\\]", ref)  # 4, 5, 10
        or "" in parts  # 6: no slash first, last or twice
        or ref.endswith(".")  # 7
        or "@{" in ref  # 8
        or ref == "@"  # 9
    )


def check_deploy_branch(value):
    """Return ``value`` if it is a branch name git accepts (git-check-ref-format(1) --branch: a valid
    refs/heads/<value>, not HEAD, no '-' first) made of letters, digits and ``._/-`` only: it is
    written unquoted into a shell command and into the push hook (deploy/hooks/pre-receive.j2)."""
    if not (
        isinstance(value, str)
        and re.fullmatch(r"[A-Za-z0-9._/-]+", value)
        and not value.startswith("-")
        and value != "HEAD"
        and _git_ref_ok(f"refs/heads/{value}")
    ):
        raise SettingError(
            "inventory: deploy_branch must be a git branch name (git-check-ref-format(1)) of letters, digits "
            f"and . _ / - only, not {value!r}"
        )
    return value


def check_server_names(names):
    """Return ``names`` as a list if each is an IPv4 address, a lower-case DNS host name (RFC 1123
    labels, at most 253 characters, the last not all digits) or ``*.`` and such a name of two labels
    or more (a wildcard nginx and a subjectAltName take). They reach nginx's server_name and an
    openssl command line: nothing else passes."""
    if not isinstance(names, list | tuple) or not names:
        raise SettingError(f'inventory: server_names must be a list of names, e.g. ["example.org"], not {names!r}')
    for name in names:
        if not _server_name_ok(name):
            raise SettingError(
                "inventory: server_names (default: the host's address) must be IPv4 addresses or lower-case DNS "
                f"names (letters, digits, hyphens; a wildcard only as '*.' first), not {name!r}"
            )
    return list(names)


def _server_name_ok(name):
    if not isinstance(name, str):
        return False
    try:
        return bool(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    host_name = name.removeprefix("*.")
    labels = host_name.split(".")
    return (
        len(host_name) <= 253
        and all(re.fullmatch(DNS_LABEL, label) for label in labels)
        and not labels[-1].isdigit()
        and (host_name == name or len(labels) > 1)
    )


def server_names():
    """The names nginx answers to for this host, checked."""
    from pyinfra import host

    return check_server_names(setting("server_names") or [host.data.get("ssh_hostname") or host.name])


def _calendar_values(text, low, high, repeat=True):
    """Whether ``text`` is ``*`` or a comma list of N, N..M, N/STEP or N..M/STEP within low..high
    (a STEP reaching past high refused)."""
    if text == "*":
        return True
    for item in text.split(","):
        match = re.fullmatch(r"([0-9]{1,4})(?:\.\.([0-9]{1,4}))?(?:/([0-9]{1,4}))?", item)
        if not match:
            return False
        start, stop, step = int(match[1]), int(match[2] or match[1]), match[3]
        if not low <= start <= stop <= high or step and not (repeat and 1 <= int(step) <= high - start):
            return False
    return True


def _weekdays(text):
    """Whether ``text`` is a comma list of weekdays (Mon or Monday) and ranges of them (Mon..Fri)."""
    for item in text.lower().split(","):
        match = re.fullmatch(r"([a-z]+)(?:(?:\.\.|-)([a-z]+))?", item)
        first, last = (match[1], match[2] or match[1]) if match else ("", "")
        if first not in WEEKDAYS or last not in WEEKDAYS or WEEKDAYS[first] > WEEKDAYS[last]:
            return False
    return True


def check_calendar_event(name, value):
    """Return ``value`` if it is a systemd calendar event (systemd.time(7), "Calendar Events") of the
    conservative form ``[WEEKDAYS] [[YEAR-]MONTH-DAY] [HOUR:MINUTE[:SECOND]] [UTC]``, single spaces
    between, or a shorthand (daily, weekly, ...). ``~DAY`` counts from the month's end; no fractions
    of seconds, no time zones but UTC. Nothing else reaches the unit file (OnCalendar=)."""
    ok = isinstance(value, str)
    if ok and value.lower() not in CALENDAR_SHORTHANDS:
        parts = value.split(" ")
        if parts[-1] == "UTC":
            parts.pop()
        found = []
        if parts and parts[0][:1].isalpha():
            found.append(_weekdays(parts.pop(0)))
        if parts and ":" not in parts[0]:
            date = re.fullmatch(r"(?:([0-9*.,/]+)-)?([0-9*.,/]+)([-~])([0-9*.,/]+)", parts.pop(0))
            found.append(
                bool(date)
                and (date[1] is None or _calendar_values(date[1], 1970, 2199))
                and _calendar_values(date[2], 1, 12)
                and _calendar_values(date[4], 1, 31 if date[3] == "-" else 28, repeat=date[3] == "-")
            )
        if parts:
            time = re.fullmatch(r"([0-9*.,/]+):([0-9*.,/]+)(?::([0-9*.,/]+))?", parts.pop(0))
            found.append(
                bool(time)
                and _calendar_values(time[1], 0, 23)
                and _calendar_values(time[2], 0, 59)
                and (time[3] is None or _calendar_values(time[3], 0, 59))
            )
        ok = bool(found) and all(found) and not parts
    if not ok:
        raise SettingError(
            f"inventory: {name} must be a systemd calendar event (systemd.time(7); check it with "
            f"systemd-analyze calendar), e.g. 'Sun *-*-* 01:15:00' or 'daily', not {value!r}"
        )
    return value


def subject_alt_names(names):
    """``names`` as an X.509 subjectAltName value, e.g. ``IP:192.0.2.1,DNS:example.org``."""

    def entry(name):
        try:
            return f"IP:{ipaddress.ip_address(name)}"
        except ValueError:
            return f"DNS:{name}"

    return ",".join(entry(name) for name in names)


def address_of_this_host():
    """This host's address on the private network (deploy/roles.py, address)."""
    from pyinfra import host

    from deploy.roles import address

    return address(host)


#: An environment variable's name (POSIX: letters, digits and _, not starting with a digit).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: A Procfile's process type (Heroku's: letters, digits, _ and -).
PROCESS_TYPE = re.compile(r"[A-Za-z0-9_-]{1,32}")


def relative_path(name, value):
    """``value`` as a clean relative path inside the release (no .., no leading /, no empty or .
    parts, no trailing /); SettingError naming ``name`` otherwise."""
    parts = str(value).split("/") if isinstance(value, str) else None
    if not parts or any(part in ("", ".", "..") for part in parts) or "\0" in value or "\n" in value:
        raise SettingError(f"inventory: {name}: {value!r} is not a path inside the release (relative, no '..')")
    return value


def check_app(s):
    """Check the app's settings (app_root, processes, shared_dirs, static and health paths,
    app_environment, wsgi_app); return the processes as {TYPE: {"command": CMD or None, "count": N}}.
    Raises SettingError naming the setting."""
    if s["app_root"]:
        relative_path("app_root", s["app_root"])
    if not isinstance(s["shared_dirs"], list):
        raise SettingError(f"inventory: shared_dirs must be a list of paths, not {s['shared_dirs']!r}")
    for path in s["shared_dirs"]:
        relative_path("shared_dirs", path)
        if path in ("venv", ".release.json", ".static"):
            raise SettingError(f"inventory: shared_dirs: {path!r} is the stack's own part of a release")
    if s["static_folder"]:
        relative_path("static_folder", s["static_folder"])
    for name in ("static_url_path", "health_path", "metrics_path"):
        if name == "metrics_path" and s[name] == "":
            continue
        if not re.fullmatch(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*", str(s[name])) or "//" in s[name] or "/../" in s[name]:
            raise SettingError(f"inventory: {name} must be a URL path starting with /, not {s[name]!r}")
    if not isinstance(s["app_environment"], dict):
        raise SettingError("inventory: app_environment must be a dict of NAME: value")
    for key, value in s["app_environment"].items():
        if not ENV_NAME.fullmatch(str(key)) or "\n" in str(value) or "\0" in str(value):
            raise SettingError(f"inventory: app_environment: {key!r} is not a valid variable name, or its value "
                               "holds a newline")  # fmt: skip
    for name in ("wsgi_app", "release_command", "worker_class"):
        if s[name] is not None and (not isinstance(s[name], str) or not s[name].strip() or "\n" in s[name]):
            raise SettingError(f"inventory: {name} must be one line of text, not {s[name]!r}")
    if not isinstance(s["processes"], dict):
        raise SettingError("inventory: processes must be a dict of TYPE: COUNT or TYPE: {command, count}")
    processes = {}
    for kind, spec in s["processes"].items():
        if not PROCESS_TYPE.fullmatch(str(kind)) or kind in ("web", "release"):
            raise SettingError(f"inventory: processes: {kind!r} is not a process type (letters, digits, _ and -; "
                               "web and release are the stack's)")  # fmt: skip
        if isinstance(spec, int) and not isinstance(spec, bool):
            spec = {"count": spec}
        if not isinstance(spec, dict) or set(spec) - {"command", "count"}:
            raise SettingError(f"inventory: processes: {kind}: expected a count or {{command, count}}, not {spec!r}")
        count = spec.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 32:
            raise SettingError(f"inventory: processes: {kind}: count must be 0 to 32, not {count!r}")
        command = spec.get("command")
        if command is not None and (not isinstance(command, str) or not command.strip() or "\n" in command):
            raise SettingError(f"inventory: processes: {kind}: command must be one line, not {command!r}")
        processes[kind] = {"command": command, "count": count}
    return processes


def stack():
    """Every setting for the current host, checked, plus the names and paths derived from them.

    Tasks and templates read this and nothing else, so a setting reaches every place that
    uses it. Raises SettingError (with the setting's name) for a value the stack cannot use.
    """
    from pyinfra import host, inventory

    from deploy.facts import CpuCount, LoginPort, LoginUser
    from deploy.roles import declared, topology

    s = {key: setting(key) for key in DEFAULTS}
    s.update(topology(host, inventory))
    app = s["app_name"]
    if not isinstance(app, str) or not re.fullmatch(r"[a-z][a-z0-9]{0,15}", app):
        raise SettingError(f"inventory: app_name must be 1-16 lower-case letters and digits, not {app!r}")
    for key in POSITIVE_INTS:
        s[key] = _positive_int(key, s[key])
    check_deploy_branch(s["deploy_branch"])
    s["processes"] = check_app(s)
    for key in ("backup_full_schedule", "backup_diff_schedule"):
        check_calendar_event(key, s[key])
    if "lb" not in s["roles"] and host.data.get("firewall_tcp_ports") is None:
        s["firewall_tcp_ports"] = []  # no web server here: only SSH (PostgreSQL's rule is db_clients')
    s["firewall_tcp_ports"] = [_port("firewall_tcp_ports", port) for port in s["firewall_tcp_ports"]]
    if s["monitoring"] and (s["database"] or s["db_clients"] or s["app_hosts"] or s["lb_addresses"]):
        raise SettingError(
            f"inventory: {host.name}: monitoring across hosts is not built yet: set monitoring: False on "
            "every host of the inventory (scripts/status works on the app and database hosts)"
        )
    s["metrics_port"] = _port("metrics_port", s["metrics_port"])
    s["app_port"] = _port("app_port", s["app_port"])
    if s["alertmanager"] is not None and not re.fullmatch(r"[A-Za-z0-9.\[\]:-]+:\d{1,5}", str(s["alertmanager"])):
        raise SettingError(f"inventory: alertmanager must be HOST:PORT, not {s['alertmanager']!r}")
    # The port sshd saw this run's login arrive on (None: not over SSH); behind NAT (Vagrant) it
    # is the server's side, not the one this workstation dialled.
    s["login_port"] = host.get_fact(LoginPort)
    # Unknown (no SSH_CONNECTION found): keep sshd where this workstation dials it.
    s["sshd_port"] = _port("sshd_port", s["sshd_port"] or s["login_port"] or host.data.get("ssh_port") or 22)
    if s["sshd_port"] in s["firewall_tcp_ports"]:
        raise SettingError(
            f"inventory: firewall_tcp_ports {s['firewall_tcp_ports']} holds SSH's port {s['sshd_port']}: it lists "
            "the other ports now (default [80, 443]); SSH's is sshd_port (default: the one you log in on)"
        )
    # Moving SSH: sshd listens on both ports (and the firewall opens both) until a login on the new
    # one is proven (deploy/tasks/ssh.py); then only sshd_port is left.
    s["ssh_port_move"] = bool(s["login_port"]) and s["login_port"] != s["sshd_port"]
    s["ssh_ports"] = [s["sshd_port"]]
    # The other side of the backups reaches SSH without the rate limit, and is never banned: a ban
    # would stop WAL archiving silently.
    s["ssh_peers"] = [peer[1] for peer in (s["backup_peer"], s["db_peer"]) if peer]
    s["fail2ban_ignore"] = [*s["fail2ban_ignore"], *(a for a in s["ssh_peers"] if a not in s["fail2ban_ignore"])]
    for key in ("rate_limit_exempt", "fail2ban_ignore"):
        for address in s[key]:
            try:
                ipaddress.ip_network(address)
            except ValueError as exc:
                raise SettingError(f"inventory: {key}: {exc}") from None
    admin = s["admin_user"]
    if not isinstance(admin, str) or not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", admin) or admin in ("root", app):
        raise SettingError(f"inventory: admin_user must be a new user name (not root or {app}), not {admin!r}")
    if bool(s["tls_certificate"]) != bool(s["tls_certificate_key"]):
        raise SettingError("inventory: set tls_certificate and tls_certificate_key together, or neither (self-signed)")
    s["server_names"] = server_names()
    # ACME (RFC 8555) issues for DNS names; IP addresses among server_names keep being served.
    s["acme_names"] = [name for name in s["server_names"] if not subject_alt_names([name]).startswith("IP:")]
    if s["tls_acme_email"]:
        if s["tls_certificate"]:
            raise SettingError("inventory: set tls_acme_email or tls_certificate, not both")
        if wildcards := [name for name in s["acme_names"] if name.startswith("*.")]:
            raise SettingError(
                f"inventory: tls_acme_email: certbot's webroot (HTTP-01) cannot certify the wildcards {wildcards} "
                "in server_names: list the names, or use tls_certificate"
            )
        if not s["acme_names"] or not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(s["tls_acme_email"])):
            raise SettingError(
                "inventory: tls_acme_email needs an e-mail address and DNS names in server_names, not "
                f"{s['tls_acme_email']!r} and {s['server_names']}"
            )
    s["workers"] = workers_per_instance(host.get_fact(CpuCount), s["instances"], s["workers_per_instance"])
    s["instance_names"] = [f"{app}-{n}" for n in range(s["instances"])]
    # Who this run logged in as (before sudo): root means first contact (deploy/tasks/admin.py).
    s["login_user"] = host.get_fact(LoginUser)
    s.update(
        srv=f"/srv/{app}",
        etc=f"/etc/{app}",
        log=f"/var/log/{app}",
        run=f"/run/{app}",
        cache=f"/var/cache/{app}",
        env_file=f"/etc/{app}/{app}.env",
        release_tool=f"/usr/local/sbin/{app}-release",
        deploy_group=f"{app}-deploy",
        build_user=f"{app}-build",
        git_dir=f"/srv/{app}/deploy.git",
        pg_conf=f"/etc/postgresql/{s['postgresql_version']}/main",
        tls_dir=f"/etc/ssl/{app}",
        tls_cert=f"/etc/ssl/{app}/{app}.crt",
        tls_key=f"/etc/ssl/{app}/{app}.key",
        nginx_snippets=f"/etc/nginx/snippets/{app}",
        api_cache_dir=f"/var/cache/nginx/{app}-api",
        acme_webroot=f"/var/www/{app}-acme",
        acme_hook=f"/usr/local/sbin/{app}-certbot-deploy",
        acme_ca=f"/etc/letsencrypt/{app}-acme-ca.pem",
        acme_lineage=f"/etc/letsencrypt/live/{app}",
        pg_data=f"/var/lib/postgresql/{s['postgresql_version']}/main",
        backup_repo="/var/lib/pgbackrest",
        backup_tool=f"/usr/local/sbin/{app}-backup",
        backup_cipher=f"/etc/pgbackrest/conf.d/{app}-cipher.conf",
        status_tool=f"/usr/local/sbin/{app}-status",
    )
    # Where the app reaches PostgreSQL: its unix socket here, or the database host over TLS,
    # checked against that host's own certificate (sslmode=verify-full; deploy/tasks/postgresql.py).
    s["database_host"] = s["database"][1] if s["database"] else "/var/run/postgresql"
    s["database_sslrootcert"] = f"{s['etc']}/db-server.crt" if s["database"] else None
    s["pg_tls_cert"] = f"{s['pg_conf']}/{app}-server.crt"
    s["pg_tls_key"] = f"{s['pg_conf']}/{app}-server.key"
    # This host's private address, where its peers reach it (PostgreSQL's clients, the load balancer).
    private = address_of_this_host() if s["db_clients"] or s["lb_addresses"] else None
    s["db_address"] = private if s["db_clients"] else None
    # The load balancer's upstream: the app hosts' nginx on the private network, or (one host)
    # the instances' unix sockets. An app host behind it listens on its private address.
    s["app_upstream"] = [f"{address}:{s['app_port']}" for _, address in s["app_hosts"]]
    s["app_listen"] = f"{private}:{s['app_port']}" if s["lb_addresses"] else None
    s["static_cache_dir"] = f"/var/cache/nginx/{app}-static"
    s["app_host_count"] = len(inventory.get_group("app", [])) if declared(inventory) else 1
    if s["app_host_count"] > 1 and s["keep_releases"] < 2:
        raise SettingError("inventory: keep_releases must be at least 2 with several app hosts (a failed release "
                           "puts the hosts it reached back on the one before)")  # fmt: skip
    # nginx's own pages, beside the site: "unavailable" when no instance (or app host) answers, and
    # the maintenance page (the lb may hold no release).
    s["pages_dir"] = f"/var/www/{app}-lb"
    s["unavailable_page"] = f"{s['pages_dir']}/unavailable.html"
    s["lib"] = f"/usr/local/lib/{app}"
    s["shared"] = f"/var/lib/{app}/shared"
    s["maintenance_snippet"] = f"{s['nginx_snippets']}/maintenance.conf"
    s["maintenance_page"] = f"{s['pages_dir']}/maintenance.html"
    # What every process of the app gets in its environment from the inventory (launch.py): Flask's
    # own FLASK_MAX_CONTENT_LENGTH (Config.from_prefixed_env) so the app and nginx agree on the largest
    # body, the sample app's defaults, then app_environment.
    s["environment"] = {"FLASK_MAX_CONTENT_LENGTH": s["max_body_bytes"], "TODO_PAGE_SIZE": s["page_size"],
                        "TODO_API_CACHE_SECONDS": s["api_cache_seconds"], **s["app_environment"]}  # fmt: skip
    return s
