"""An ACME certificate (tls_acme_email): certbot (Debian) in webroot mode behind the running
nginx, its deploy hook installing each new certificate where nginx reads it (checked with
nginx -t, then a reload), and certbot.timer renewing it. Without ACME, certbot's certificate
for the site is deleted, so that no renewal replaces the configured one."""

import shlex

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File, FileContents, Sha1File
from pyinfra.operations import apt, files, server, systemd

from deploy.facts import Certificate


@deploy("ACME certificate")
def acme(s):
    """Ensure the site's ACME certificate (first issuance, renewal timer, deploy hook), or none."""
    app, lineage = s["app_name"], s["acme_lineage"]
    if not s["tls_acme_email"]:
        server.shell(
            name="No ACME: delete certbot's certificate for the site (its renewals would replace the site's).",
            commands=[f"certbot delete --non-interactive --cert-name {app}"],
            _if=lambda: host.get_fact(File, path=f"/etc/letsencrypt/renewal/{app}.conf") is not None,
        )
        gone = files.file(
            name="No ACME: remove certbot.service's drop-in (it would install certbot's certificate).",
            path=f"/etc/systemd/system/certbot.service.d/{app}.conf",
            present=False,
        )
        systemd.daemon_reload(name="Reload systemd units: certbot.service's drop-in is gone.", _if=gone.did_change)
        return
    apt.packages(name="Ensure certbot is installed.", packages=["certbot"], no_recommends=True)
    files.directory(
        name=f"Ensure certbot's webroot {s['acme_webroot']} (nginx serves its ACME challenges).",
        path=s["acme_webroot"],
        user="root",
        group="root",
        mode="755",
    )
    files.template(
        name=f"Ensure the deploy hook {s['acme_hook']} (install the certificate, nginx -t, reload nginx).",
        src="deploy/server/certbot-deploy-hook.j2",
        dest=s["acme_hook"],
        user="root",
        group="root",
        mode="755",
        **s,
    )
    env = ""
    if s["tls_acme_ca_bundle"]:
        files.put(
            name=f"Ensure the ACME server's CA {s['acme_ca']} (tls_acme_ca_bundle).",
            src=s["tls_acme_ca_bundle"],
            dest=s["acme_ca"],
            user="root",
            group="root",
            mode="644",
        )
        env = f"REQUESTS_CA_BUNDLE={s['acme_ca']} "
    certbot_dropin = files.template(
        name="Ensure certbot.service's drop-in (the ACME server's CA; the deploy hook again if it failed).",
        src="systemd/certbot.service.d/todo.conf.j2",
        dest=f"/etc/systemd/system/certbot.service.d/{app}.conf",
        user="root",
        group="root",
        mode="644",
        create_remote_dir=True,
        **s,
    )
    systemd.daemon_reload(
        name="Reload systemd units: certbot.service's drop-in changed.", _if=certbot_dropin.did_change
    )

    names = s["acme_names"]
    certonly = [
        "certbot", "certonly", "--non-interactive", "--agree-tos", "--no-eff-email",
        "--email", s["tls_acme_email"], "--server", s["tls_acme_server"],
        "--webroot", "--webroot-path", s["acme_webroot"], "--cert-name", app, "--key-type", "ecdsa",
        "--deploy-hook", s["acme_hook"], "--force-renewal",
        *(arg for name in names for arg in ("--domain", name)),
    ]  # fmt: skip
    renewal = f"/etc/letsencrypt/renewal/{app}.conf"

    def obtain():
        """No certificate from certbot yet, or one for other names or from another ACME server."""
        names_now = (host.get_fact(Certificate, path=f"{lineage}/cert.pem") or {}).get("names", [])
        server_now = [line for line in host.get_fact(FileContents, path=renewal) or [] if line.startswith("server =")]
        return sorted(names_now) != sorted(f"DNS:{name}" for name in names) or server_now != [
            f"server = {s['tls_acme_server']}"
        ]

    server.shell(
        name=f"Obtain the ACME certificate for {', '.join(names)} from {s['tls_acme_server']} (certbot webroot; "
        "its deploy hook installs it and reloads nginx).",
        commands=[env + shlex.join(certonly)],
        _if=obtain,
    )
    server.shell(
        name="Install certbot's current certificate for nginx (its deploy hook): nginx serves another one.",
        commands=[f"RENEWED_LINEAGE={lineage} {s['acme_hook']}"],
        _if=lambda: (
            host.get_fact(Sha1File, path=s["tls_cert"]) != host.get_fact(Sha1File, path=f"{lineage}/fullchain.pem")
        ),
    )
    systemd.service(
        name="Ensure certbot.timer renews the certificate.", service="certbot.timer", running=True, enabled=True
    )
