"""Deploy settings: the defaults, one line each, overridable per host or group in the inventory."""

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
    # Seconds to wait for an instance's /healthz after (re)starting it.
    "health_timeout": 30,
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
    # POSTs per second per client address nginx lets through, and the burst above that rate
    # answered at once before 429s begin. GET and HEAD are never limited.
    "post_rate_per_second": 5,
    "post_burst": 20,
    # Client addresses or CIDRs exempt from the POST rate limit (e.g. a load generator).
    "rate_limit_exempt": [],
    # Inbound TCP ports the firewall (nftables) lets through: SSH, HTTP, HTTPS.
    "firewall_tcp_ports": [22, 80, 443],
    # Debian 12 ships PostgreSQL 15.
    "postgresql_version": 15,
}


def setting(name):
    """Return a setting for the current host: inventory data first, then DEFAULTS."""
    from pyinfra import host

    value = host.data.get(name)
    return DEFAULTS[name] if value is None else value


def workers_per_instance(cores):
    """Workers per gunicorn instance for a host with ``cores`` CPUs."""
    explicit = setting("workers_per_instance")
    if explicit:
        return int(explicit)
    return max(2, -(-(2 * cores + 1) // int(setting("instances"))))


def server_names():
    """The names nginx answers to for this host."""
    from pyinfra import host

    names = setting("server_names")
    if names:
        return list(names)
    return [host.data.get("ssh_hostname") or host.name]


def subject_alt_names(names):
    """``names`` as an X.509 subjectAltName value, e.g. ``IP:192.0.2.1,DNS:example.org``."""
    import ipaddress

    def entry(name):
        try:
            return f"IP:{ipaddress.ip_address(name)}"
        except ValueError:
            return f"DNS:{name}"

    return ",".join(entry(name) for name in names)
