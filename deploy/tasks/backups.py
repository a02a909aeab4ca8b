"""Backups of the database with pgBackRest (Debian): WAL archiving, an encrypted repository,
full and differential backups by systemd timers, the server's backup tool, and a first full
backup.

Where the repository is (deploy/roles.py):
- on the database server itself (/var/lib/pgbackrest), the single-server default: it shares the
  server's disk, and every status says so;
- on a backup host (an inventory host in the ``backup`` group only): pgBackRest's repository
  host, https://pgbackrest.org/user-guide.html#repo-host. The repository, its passphrase and
  the backup timers are there, run by its user ``pgbackrest``; the database host pushes its WAL
  there as postgres (asynchronously). Each side trusts the other's own SSH key, generated on
  that host (never copied elsewhere), for pgBackRest's commands only.
"""

from pyinfra import host, inventory
from pyinfra.api import FactBase, deploy
from pyinfra.facts.files import Directory, File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from deploy.facts import PostgresValue, SystemIdMismatch, TextLine
from deploy.operations import barrier, config_files, peer_ssh_port, render, server_tool, ssh_peer, timer, user_files
from deploy.tasks.postgresql import SETTINGS_CHECK

#: Settings the backup tool reads on the server (/etc/<app>/backup.json).
TOOL_SETTINGS = ("app_name", "postgresql_version", "pg_data", "instance_names", "backup_max_age", "backup_repo")
#: The repository host's user (pgBackRest's user guide) and its home.
REPO_USER, REPO_HOME = "pgbackrest", "/home/pgbackrest"
#: postgres's home on Debian.
PG_HOME = "/var/lib/postgresql"
#: What each side's key may run on the other: pgBackRest, with the arguments pgBackRest sent.
FORCED = "/usr/bin/pgbackrest ${SSH_ORIGINAL_COMMAND#* }"


class BackupCount(FactBase):
    """How many backups pgBackRest's repository holds for a stanza (0 without one), read as ``user``."""

    def command(self, stanza, user="postgres"):
        return (
            f"runuser -u {user} -- pgbackrest --stanza={stanza} info --output=json 2>/dev/null "
            "| python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0].get(\"backup\", [])))' "
            "2>/dev/null || echo 0"
        )

    def process(self, output):
        return int(output[0])


def mismatch(s):
    """True when the database host's cluster is not the stanza's (a new server not restored yet),
    asked of the database host whichever host runs this."""
    db = inventory.get_host(s["db_peer"][0]) if s["db_peer"] else host
    return db.get_fact(SystemIdMismatch, stanza=s["app_name"], pg_data=s["pg_data"], version=s["postgresql_version"])


@deploy("Backups")
def backups(s):
    """Ensure WAL archiving into an encrypted pgBackRest repository (here or on the backup host),
    the backup timers and tool."""
    app, roles = s["app_name"], s["roles"]
    is_db, repo_host, remote = "db" in roles, bool(s["db_peer"]), bool(s["backup_peer"])
    if not is_db and not repo_host:
        return
    holds_repo = repo_host or not remote
    user = REPO_USER if repo_host else "postgres"
    pgbackrest = f"runuser -u {user} -- pgbackrest --stanza={app}"
    data = {**s, "backup_user": user, "backup_user_remote": REPO_USER}
    apt.packages(name="Ensure pgBackRest is installed.", packages=["pgbackrest"], no_recommends=True)
    if repo_host:
        server.user(
            name=f"Ensure the repository's user {REPO_USER} (a shell for its forced SSH command; no password).",
            user=REPO_USER,
            home=REPO_HOME,
            shell="/bin/bash",
            system=True,
        )
        for path in ("/var/log/pgbackrest", "/var/spool/pgbackrest"):
            files.directory(name=f"Ensure {path} is {REPO_USER}'s.", path=path, user=REPO_USER, group=REPO_USER,
                            mode="750")  # fmt: skip
    for path in ("/etc/pgbackrest", "/etc/pgbackrest/conf.d"):
        files.directory(name=f"Ensure {path} (root:{user} 0750).", path=path, user="root", group=user, mode="750")
    where = "" if repo_host else (
        " SAME DISK: the backups are on this server; a lost server loses them too: name a backup host."
    )  # fmt: skip
    changed = []
    if holds_repo:
        files.directory(
            name=f"Ensure the repository {s['backup_repo']} is {user}'s alone (0750: not the app user's).{where}",
            path=s["backup_repo"],
            user=user,
            group=user,
            mode="750",
        )
    conf = files.template(
        name="Ensure pgBackRest's configuration ("
        + ("the backup host's repository" if remote else "stanza, encrypted repository, retention")
        + ").",
        src="backup/pgbackrest.conf.j2",
        dest="/etc/pgbackrest/pgbackrest.conf",
        user="root",
        group=user,
        mode="640",
        **data,
    )
    changed.append(conf)
    cipher = s["backup_cipher"]
    kept = f"/etc/pgbackrest/{app}-cipher.local-repository.conf"
    if holds_repo:
        if not repo_host:
            server.shell(
                name=f"Put back the local repository's passphrase kept as {kept} (the backup host is gone).",
                commands=[f"mv {kept} {cipher}"],
                _if=lambda: host.get_fact(File, path=cipher) is None and host.get_fact(File, path=kept) is not None,
            )
            keys = f"{PG_HOME}/.ssh/authorized_keys"
            server.shell(
                name=f"Ensure no former backup host may log in as postgres (the deploy's line in {keys} is gone).",
                commands=[f"rm -f {keys}"],
                _if=lambda: (
                    (host.get_fact(TextLine, path=keys) or "").startswith("restrict,from=")
                    and FORCED.split()[0] in host.get_fact(TextLine, path=keys)
                ),
            )
        server.shell(
            name=f"Ensure the repository's passphrase {cipher} (generated once).",
            commands=[
                f"umask 077 && printf '[global]\\nrepo1-cipher-pass=%s\\n' \"$(openssl rand -base64 48)\" "
                f"> {cipher}.new && chown {user}:{user} {cipher}.new && mv {cipher}.new {cipher}"
            ],
            _if=lambda: host.get_fact(File, path=cipher) is None,
        )
        files.file(name=f"Ensure {cipher} is {user} 0600.", path=cipher, user=user, group=user, mode="600")
    else:
        # The passphrase of a repository this server had before the backup host: kept (root only,
        # out of pgBackRest's conf.d) until its backups are of no use.
        server.shell(
            name=f"Keep the former local repository's passphrase as {kept} (root 0600): the backup host has its own.",
            commands=[f"chown root:root {cipher} && chmod 600 {cipher} && mv {cipher} {kept}"],
            _if=lambda: host.get_fact(File, path=cipher) is not None,
        )

    if is_db:
        archive = config_files(
            name="Ensure PostgreSQL archives its WAL with pgBackRest (archive_timeout; pg_file_settings).",
            files=[("postgresql/archive.conf.j2", f"{s['pg_conf']}/conf.d/90-{app}-archive.conf", "644", s)],
            check=SETTINGS_CHECK,  # archive_mode waits for the restart that follows
            user="postgres",
            group="postgres",
        )
        unit = f"postgresql@{s['postgresql_version']}-main"
        restarted = systemd.service(
            name="Restart PostgreSQL: archive_mode is off (it takes effect at a start only; a few seconds of 503s).",
            service=unit,
            restarted=True,
            _if=lambda: host.get_fact(PostgresValue, database="postgres", sql="SHOW archive_mode") != "on",
        )
        systemd.service(
            name="Reload PostgreSQL: the archive settings changed.",
            service=unit,
            reloaded=True,
            _if=lambda: archive.did_change() and not restarted.did_change(),
        )
        changed += [archive, restarted]

    if remote or repo_host:
        changed += ssh_trust(s, user)
    stanza = None
    if holds_repo:
        stanza = server.shell(
            name=f"Create pgBackRest's stanza {app} (the repository's layout for this cluster).",
            commands=[f"{pgbackrest} stanza-create"],
            _if=lambda: host.get_fact(File, path=f"{s['backup_repo']}/backup/{app}/backup.info") is None,
        )
        changed.append(stanza)
    barrier(name="Wait for every host's backup steps so far (the stanza exists before it is checked).")
    server.shell(
        name="Check that WAL reaches the repository and the repository reaches the database (pgbackrest check); "
        "not on a new database server whose cluster is not the stanza's: restore it first (scripts/backup restore).",
        commands=[f"{pgbackrest} check"],
        _if=lambda: any_changed(*changed)() and not mismatch(s),
    )

    if is_db:
        settings = {key: s[key] for key in TOOL_SETTINGS}
        # The instances to stop for a restore: none when the app runs on another host.
        settings.update(backup_host=s["backup_peer"], instance_names=s["instance_names"] if "app" in roles else [])
        server_tool(s, "backup", settings)
    if not holds_repo:
        for kind in ("full", "diff"):
            unit = f"{app}-backup-{kind}"
            path = f"/etc/systemd/system/{unit}.timer"
            systemd.service(
                name=f"Ensure {unit}.timer is off: the backup host runs the backups.",
                service=f"{unit}.timer",
                running=False,
                enabled=False,
                _if=lambda path=path: host.get_fact(File, path=path) is not None,
            )
            gone = [files.file(name=f"Ensure {unit}.{suffix} is gone.", path=f"/etc/systemd/system/{unit}.{suffix}",
                               present=False) for suffix in ("timer", "service")]  # fmt: skip
            systemd.daemon_reload(name=f"Reload systemd units: {unit}'s units are gone.", _if=any_changed(*gone))
    if holds_repo:
        for kind in ("full", "diff"):
            schedule = s[f"backup_{kind}_schedule"]
            timer(f"{app}-backup-{kind}", "backup", {**data, "kind": kind, "schedule": schedule}, schedule)
        server.shell(
            name="Take the first full backup: the repository holds none (a restore needs one to start from).",
            commands=[f"{pgbackrest} --type=full backup"],
            _if=lambda: host.get_fact(BackupCount, stanza=app, user=user) == 0 and not mismatch(s),
        )


def ssh_trust(s, user):
    """Ensure ``user``'s SSH key pair (made here), its client config for the peer, and the peer's key
    trusted to run pgBackRest (ssh_peer). Returns the operations whose change needs a new check."""
    app = s["app_name"]
    home = REPO_HOME if s["db_peer"] else PG_HOME
    peer = s["db_peer"] or s["backup_peer"]
    peer_user, peer_home = ("postgres", PG_HOME) if s["db_peer"] else (REPO_USER, REPO_HOME)
    ssh_dir = f"{home}/.ssh"
    # Made and written by the user itself: root never chowns inside a directory another user owns.
    made = server.shell(
        name=f"Ensure {ssh_dir} ({user} 0700).",
        commands=[f"runuser -u {user} -- sh -c 'mkdir -p {ssh_dir} && chmod 700 {ssh_dir}'"],
        _if=lambda: (
            (host.get_fact(Directory, path=ssh_dir) or {}).get("mode") != 700
            or host.get_fact(Directory, path=ssh_dir)["user"] != user
        ),
    )
    # One call site for both hosts: each host's key exists before either reads the other's.
    key = server.shell(
        name=f"Ensure {user}'s SSH key (ed25519, made on this host; its private half never leaves it).",
        commands=[f"runuser -u {user} -- ssh-keygen -q -t ed25519 -N '' -C {user}@{app} -f {ssh_dir}/id_ed25519"],
        _if=lambda: host.get_fact(File, path=f"{ssh_dir}/id_ed25519") is None,
    )
    config = user_files(
        name=f"Ensure {user}'s SSH client settings for {peer[1]} (keys only, its host key checked, 10 s to connect).",
        user=user,
        texts={
            f"{ssh_dir}/config": render(
                "backup/ssh_config.j2",
                {"address": peer[1], "peer_user": peer_user, "port": peer_ssh_port(peer[0]), "home": home},
            ).read()
        },
    )
    trust = ssh_peer(
        name=f"Ensure {user} trusts {peer[0]} ({peer[1]}): its {peer_user} key runs pgBackRest (forced), its host key.",
        user=user,
        home=home,
        peer=peer,
        key_path=f"{peer_home}/.ssh/id_ed25519.pub",
        command=FORCED,
    )
    return [made, key, config, trust]
