"""Inventory: an example production server, every setting with its default; copy it, edit it.

    cp deploy/inventories/example.py deploy/inventories/mysite.py    # then edit the copy
    scripts/provision deploy/inventories/mysite.py
    scripts/release --target deploy/inventories/mysite.py

Keys are pyinfra's connection settings (ssh_user, ssh_port, ssh_key, _sudo) and the stack's
settings of deploy/settings.py, whose defaults are the values below: delete a line to keep
the default. The login user needs your SSH key and passwordless sudo; provisioning makes it
a member of the deploy group (git push). 203.0.113.5 is a documentation address (RFC 5737):
provisioning it fails until you put your server's address in. tests/docs checks that every
setting of deploy/settings.py is listed here.
"""

hosts = [
    (
        "203.0.113.5",
        {
            # --- How to reach the server (pyinfra) ---
            "ssh_user": "admin",
            "ssh_port": 22,
            "_sudo": True,
            # --- The stack (deploy/settings.py) ---
            # The one name: system user, /srv/<app>, /etc/<app>, database and role. 1-16 of a-z0-9.
            "app_name": "todo",
            # gunicorn instances behind nginx (each a master with its workers).
            "instances": 2,
            # Workers per instance; None: (2 x cores + 1) split over the instances, at least 2.
            "workers_per_instance": None,
            # Names nginx answers to; None: the address above. Other Host headers get no answer.
            "server_names": None,
            # Largest request body, bytes (nginx and Flask agree).
            "max_body_bytes": 16384,
            # Todos per page of the list (and of GET /api/todos).
            "page_size": 50,
            # Seconds nginx's microcache (and browsers) keep GET /api/todos.
            "api_cache_seconds": 1,
            # Seconds to wait for an instance's health check after (re)starting it.
            "health_timeout": 30,
            # The app (docs/your-app.md): its folder in the repository a release ships ("" for an app
            # at the top of its own repository; "app" is the sample app's).
            "app_root": "app",
            # Its WSGI entry point (MODULE:APP); None: the Procfile's web: line, else wsgi.py or app.py.
            "wsgi_app": None,
            # Run once per release before it serves (migrations); None: the Procfile's release: line.
            "release_command": None,
            # Process types besides web: {TYPE: COUNT} or {TYPE: {"command": CMD, "count": N}}.
            "processes": {},
            # The path an instance answers 200 on when it can serve (the sample app's /healthz).
            "health_path": "/healthz",
            # gunicorn's worker class; None: the Procfile's, else sync.
            "worker_class": None,
            # The static folder in the release (None: Flask's default, found) and its URL path.
            "static_folder": None,
            "static_url_path": "/static",
            # Paths in the release kept across releases (uploads, an instance folder).
            "shared_dirs": [],
            # The app's own environment variables (not secrets: scripts/config for those).
            "app_environment": {},
            # Addresses that still reach the app in maintenance mode (scripts/maintenance).
            "maintenance_allow": [],
            # Seconds to wait for an instance's queued requests before it stops.
            "drain_timeout": 30,
            # Releases kept on the server, the current one among them.
            "keep_releases": 5,
            # The branch of the server's push repository whose pushes are released.
            "deploy_branch": "main",
            # Your certificate (PEM, with its chain) and key, paths on this workstation;
            # None: a self-signed certificate made on the server (365 days, renewed by provisioning).
            "tls_certificate": None,
            "tls_certificate_key": None,
            # Your e-mail for an ACME certificate (Let's Encrypt) for the DNS names in server_names,
            # got and renewed on the server by certbot behind nginx; None: no ACME.
            "tls_acme_email": None,
            # The ACME directory URL (RFC 8555) and, for a private ACME server, the CA file (on this
            # workstation) of its own HTTPS certificate; None: the system's CAs.
            "tls_acme_server": "https://acme-v02.api.letsencrypt.org/directory",
            "tls_acme_ca_bundle": None,
            # POSTs per second per client address, and the burst above it before 429s; GETs are never limited.
            "post_rate_per_second": 5,
            "post_burst": 20,
            # Client addresses or CIDRs exempt from the POST rate limit (e.g. a load generator).
            "rate_limit_exempt": [],
            # Inbound TCP ports the firewall lets through besides SSH's (sshd_port).
            "firewall_tcp_ports": [80, 443],
            # The port sshd listens on; None: the one this run logged in on. Set another to move SSH:
            # the run opens it, proves a login there, then closes the old one (docs/first-server.md).
            "sshd_port": None,
            # Addresses or CIDRs fail2ban never bans (your office, a monitoring host); loopback never is.
            "fail2ban_ignore": [],
            # Seconds a client stays banned (after 5 failed SSH logins in 10 minutes, or 60 answers
            # of 429/444 from nginx in a minute).
            "fail2ban_bantime": 3600,
            # Backups (pgBackRest): seconds after which a database that wrote anything ships its
            # WAL (archive_timeout: the most a restore loses when the server is lost), when full and
            # differential backups run (systemd OnCalendar), full backups kept, and the seconds
            # after which the newest backup counts as late (scripts/backup status warns).
            "backup_archive_timeout": 60,
            "backup_full_schedule": "Sun *-*-* 01:15:00",
            "backup_diff_schedule": "Mon..Sat *-*-* 01:15:00",
            "backup_retention_full": 2,
            "backup_max_age": 93600,
            # Monitoring: Prometheus and Debian's exporters on the server, loopback only, with the
            # alert rules (docs/operations.md); nginx's loopback metrics port; where each instance
            # serves the app's own metrics ("": it has none; nginx's log gives every app's
            # request metrics either way); days of samples kept;
            # an Alertmanager "HOST:PORT" to send firing alerts to (None: shown, not sent).
            "monitoring": True,
            "metrics_port": 9180,
            "metrics_path": "/metrics",
            "prometheus_retention_days": 15,
            "alertmanager": None,
            # With a backup host (the groups at the end of this file): the address the other host
            # reaches this one on; None: the address above.
            "private_address": None,
            # Several hosts: the port an app host's nginx listens on, for the load balancer only.
            "app_port": 8080,
            # PostgreSQL major version (Debian 12 ships 15).
            "postgresql_version": 15,
            # Provisioning as root (a fresh server): the sudo user it makes, proves over SSH, then
            # uses instead of root, whose SSH login it closes (docs/first-server.md).
            "admin_user": "admin",
            # Public keys (authorized_keys lines) for admin_user; None: root's authorized_keys.
            "admin_authorized_keys": None,
        },
    )
]

# Backups off this server (docs/operations.md, "A backup host"): name the roles with groups
# instead of `hosts` above. The server holds lb, app and db; a second Debian 12 server holds
# pgBackRest's repository, reached over SSH by each side's own key. For example:
#
#   _server = hosts[0]
#   lb = app = db = [_server]
#   backup = [("203.0.113.6", {"ssh_user": "admin", "_sudo": True, "monitoring": False})]
#   del hosts
#
# Several hosts (docs/hosts.md): one load balancer, app hosts behind it, the database on a host of
# its own, each with the private address the others reach it on (monitoring across hosts is not
# built: False on each). For example:
#
#   def _host(address, private):
#       return (address, {"ssh_user": "admin", "_sudo": True, "monitoring": False, "private_address": private})
#   lb = [_host("203.0.113.5", "10.0.0.10")]
#   app = [_host("203.0.113.11", "10.0.0.11"), _host("203.0.113.12", "10.0.0.12")]
#   db = [_host("203.0.113.20", "10.0.0.20")]
#   del hosts
