"""nginx in front: TLS certificate, main config, snippets and the site, checked together by
``nginx -t`` before nginx reloads; restarted by systemd when it dies."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, server, systemd

from deploy.facts import Certificate
from deploy.operations import config_files, dropin, server_tool
from deploy.settings import subject_alt_names

#: Snippets copied as they are (proxy.conf is rendered: it differs on a load balancer apart).
SNIPPETS = ("gzip.conf", "brotli.conf", "tls.conf", "security-headers.conf")
#: Lifetime of the self-signed certificate, days: within the 398 days browsers accept (CA/B
#: Forum baseline requirements) and Mozilla's guideline (366); made again RENEW_DAYS before expiry.
SELF_SIGNED_DAYS, RENEW_DAYS, DAY = 365, 30, 86400


def certificate(s):
    """Ensure the site's TLS certificate and key: the operator's, or a self-signed one made once."""
    files.directory(name=f"Ensure {s['tls_dir']} exists.", path=s["tls_dir"], user="root", group="root", mode="755")
    if s["tls_certificate"]:
        return [
            files.put(name=f"Ensure the operator's TLS {what}.", src=src, dest=dest, user="root", mode=mode)
            for what, src, dest, mode in [
                ("certificate", s["tls_certificate"], s["tls_cert"], "644"),
                ("key (root 0600)", s["tls_certificate_key"], s["tls_key"], "600"),
            ]
        ]
    names, sans = s["server_names"], subject_alt_names(s["server_names"])

    def stale():
        """No certificate or key; else (without ACME, whose certificate replaces this one and
        is renewed by certbot) not self-signed, other names, a lifetime over 365 days, or under
        30 days left."""
        cert = host.get_fact(Certificate, path=s["tls_cert"])
        missing = host.get_fact(File, path=s["tls_key"]) is None or cert is None
        return missing or (
            not s["tls_acme_email"]
            and (
                not cert["self_signed"]  # certbot's, left from when ACME was on
                or sorted(cert["names"]) != sorted(sans.split(","))
                or cert["lifetime"] > SELF_SIGNED_DAYS * DAY
                or cert["remaining"] < RENEW_DAYS * DAY
            )
        )

    generated = server.shell(
        name=f"Generate a self-signed TLS certificate (ECDSA P-256, {SELF_SIGNED_DAYS} days) for the server names "
        f"(again when they change or {RENEW_DAYS} days before it expires).",
        commands=[
            f"umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
            f"-days {SELF_SIGNED_DAYS} -subj '/CN={names[0]}' -addext 'subjectAltName={sans}' "
            f"-keyout {s['tls_key']}.new -out {s['tls_cert']}.new 2>/dev/null && chmod 644 {s['tls_cert']}.new "
            f"&& mv -f {s['tls_key']}.new {s['tls_key']} && mv -f {s['tls_cert']}.new {s['tls_cert']}"
        ],
        _if=stale,
    )
    for path, mode in ((s["tls_cert"], "644"), (s["tls_key"], "600")):
        files.file(name=f"Ensure {path} is root {mode}.", path=path, user="root", group="root", mode=mode)
    return [generated]


def sites(s):
    """The nginx sites of this host's roles, as (name, template): the public site on the load
    balancer; an app host behind a load balancer apart (or one of several) listens for it alone."""
    found = []
    if "lb" in s["roles"]:
        found.append((s["app_name"], "nginx/sites-available/todo.conf.j2"))
    if s["app_listen"]:
        found.append((f"{s['app_name']}-app", "nginx/sites-available/todo-app.conf.j2"))
    return found


@deploy("nginx")
def nginx(s):
    """Ensure nginx's certificate and configuration (checked with nginx -t), reloaded only when it
    changed: on the load balancer, the public site; on an app host behind one, the app site."""
    lb, app = "lb" in s["roles"], s["app_name"]
    # Before the drop-in: a path nginx's sandbox makes writable must exist when nginx starts.
    caches = [("/var/cache/nginx", "root", "755", "nginx's caches")]
    if lb:
        caches.append((s["api_cache_dir"], "www-data", "700", "the API's microcache"))
    if s["app_upstream"]:
        caches.append((s["static_cache_dir"], "www-data", "700", "the static files fetched from the app hosts"))
    for path, owner, mode, what in caches:
        files.directory(name=f"Ensure {path} ({owner} {mode}; {what}).", path=path, user=owner, group=owner, mode=mode)
    unit = dropin("nginx.service", s)
    tls = certificate(s) if lb else []
    if lb:
        files.directory(name=f"Ensure {s['pages_dir']} exists.", path=s["pages_dir"], user="root", group="root",
                        mode="755")  # fmt: skip
        # Read at each request: a new copy needs no reload.
        for page, what in (("unavailable", "for when no instance or app host answers"),
                           ("maintenance", "scripts/maintenance")):  # fmt: skip
            files.put(
                name=f"Ensure nginx's {page} page ({what}).",
                src=f"nginx/{page}.html",
                dest=s[f"{page}_page"],
                user="root",
                group="root",
                mode="644",
            )
        server_tool(s, "maintenance", {"app_name": s["app_name"], "snippet": s["maintenance_snippet"]})
    wanted = sites(s)
    config = config_files(
        name="Ensure nginx's configuration: nginx.conf, the snippets and this host's sites (nginx -t).",
        files=[
            ("nginx/nginx.conf.j2", "/etc/nginx/nginx.conf", "644", s),
            *((f"nginx/snippets/todo/{name}", f"{s['nginx_snippets']}/{name}", "644", None) for name in SNIPPETS),
            ("nginx/snippets/todo/proxy.conf.j2", f"{s['nginx_snippets']}/proxy.conf", "644", s),
            ("nginx/snippets/todo/static.conf.j2", f"{s['nginx_snippets']}/static.conf", "644", s),
            *((src, f"/etc/nginx/sites-available/{name}.conf", "644", s) for name, src in wanted),
        ],
        check="nginx -t -q",
    )
    links = [
        files.link(
            name=f"Ensure the nginx site {name} is {'enabled' if name in dict(wanted) else 'disabled (other roles)'}.",
            path=f"/etc/nginx/sites-enabled/{name}.conf",
            target=f"/etc/nginx/sites-available/{name}.conf",
            present=name in dict(wanted),
        )
        for name in (app, f"{app}-app")
    ]
    default = files.link(
        name="Ensure the stock default site is disabled.", path="/etc/nginx/sites-enabled/default", present=False
    )
    changed = [*tls, config, *links, default]
    server.shell(
        name="Validate the nginx configuration (nginx -t).",
        commands=["nginx -t -q"],
        _if=lambda: any(op.did_change() for op in changed),
    )
    systemd.service(
        name="Reload nginx: its configuration changed and is valid.",
        service="nginx",
        running=True,
        reloaded=True,
        _if=lambda: any(op.did_change() for op in changed),
    )
    # A cache keeps what older rules let in (an API answer cached for minutes by a drifted
    # config): rules that changed start from empty caches. As www-data, whose directories they
    # are; after the reload, so the workers of the old rules no longer fill them. Files only, and
    # any nginx removes or renames meanwhile passed over (its cache manager works there too).
    for path, owner, _, what in caches[1:]:
        server.shell(
            name=f"Empty {what} ({path}): nginx's configuration changed.",
            # From /: find goes back to its starting directory, which www-data may not enter (/root).
            commands=[f"cd / && runuser -u {owner} -- find {path} -ignore_readdir_race -type f -delete"],
            _if=lambda: any(op.did_change() for op in changed),
        )
    systemd.service(name="Ensure nginx is running and enabled.", service="nginx", running=True, enabled=True)
    systemd.service(
        name="Restart nginx: its unit's drop-in (sandbox) changed, which a reload does not apply.",
        service="nginx",
        restarted=True,
        _if=unit.did_change,
    )
