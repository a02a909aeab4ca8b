"""Backups of the database with pgBackRest (Debian): WAL archiving, an encrypted repository,
full and differential backups by systemd timers, the server's backup tool, and a first full
backup. The repository is on this server (/var/lib/pgbackrest): it shares the server's disk."""

from pyinfra import host
from pyinfra.api import FactBase, deploy
from pyinfra.facts.files import File
from pyinfra.operations import apt, files, server, systemd
from pyinfra.operations.util import any_changed

from deploy.facts import PostgresValue
from deploy.operations import config_files, server_tool, timer

#: Settings the backup tool reads on the server (/etc/<app>/backup.json).
TOOL_SETTINGS = ("app_name", "postgresql_version", "pg_data", "instance_names", "backup_max_age", "backup_repo")


class BackupCount(FactBase):
    """How many backups pgBackRest's repository holds for a stanza (0 without one)."""

    def command(self, stanza):
        return (
            f"runuser -u postgres -- pgbackrest --stanza={stanza} info --output=json 2>/dev/null "
            "| python3 -c 'import json,sys; print(len(json.load(sys.stdin)[0].get(\"backup\", [])))' "
            "2>/dev/null || echo 0"
        )

    def process(self, output):
        return int(output[0])


@deploy("Backups")
def backups(s):
    """Ensure WAL archiving into an encrypted pgBackRest repository, the backup timers and tool."""
    app, pgbackrest = s["app_name"], f"runuser -u postgres -- pgbackrest --stanza={s['app_name']}"
    apt.packages(name="Ensure pgBackRest is installed.", packages=["pgbackrest"], no_recommends=True)
    for path in ("/etc/pgbackrest", "/etc/pgbackrest/conf.d"):
        files.directory(name=f"Ensure {path} (root:postgres 0750).", path=path, user="root", group="postgres",
                        mode="750")  # fmt: skip
    files.directory(
        name=f"Ensure the repository {s['backup_repo']} is postgres's alone (0750: not the app user's). "
        "SAME DISK: the backups are on this server; a lost server loses them too: copy them off.",
        path=s["backup_repo"],
        user="postgres",
        group="postgres",
        mode="750",
    )
    conf = files.template(
        name="Ensure pgBackRest's configuration (stanza, encrypted repository, retention).",
        src="backup/pgbackrest.conf.j2",
        dest="/etc/pgbackrest/pgbackrest.conf",
        user="root",
        group="postgres",
        mode="640",
        **s,
    )
    cipher = s["backup_cipher"]
    server.shell(
        name=f"Ensure the repository's passphrase {cipher} (generated once).",
        commands=[
            f"umask 077 && printf '[global]\\nrepo1-cipher-pass=%s\\n' \"$(openssl rand -base64 48)\" > {cipher}.new "
            f"&& chown postgres:postgres {cipher}.new && mv {cipher}.new {cipher}"
        ],
        _if=lambda: host.get_fact(File, path=cipher) is None,
    )
    files.file(name=f"Ensure {cipher} is postgres 0600.", path=cipher, user="postgres", group="postgres", mode="600")

    archive = config_files(
        name="Ensure PostgreSQL archives its WAL with pgBackRest (archive_timeout; pg_file_settings).",
        files=[("postgresql/archive.conf.j2", f"{s['pg_conf']}/conf.d/90-{app}-archive.conf", "644", s)],
        # A line PostgreSQL cannot parse or a bad value is an error; "could not be applied" only
        # means the setting waits for a restart (archive_mode), which follows.
        check='[ "$(runuser -u postgres -- psql -Atc "SELECT count(*) FROM pg_file_settings '
        "WHERE error IS NOT NULL AND error <> 'setting could not be applied'\")\" = 0 ]",
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
    stanza = server.shell(
        name=f"Create pgBackRest's stanza {app} (the repository's layout for this cluster).",
        commands=[f"{pgbackrest} stanza-create"],
        _if=lambda: host.get_fact(File, path=f"{s['backup_repo']}/backup/{app}/backup.info") is None,
    )
    server.shell(
        name="Check that WAL reaches the repository (pgbackrest check: a WAL switch, archived and found).",
        commands=[f"{pgbackrest} check"],
        _if=any_changed(conf, archive, stanza, restarted),
    )

    server_tool(s, "backup", {key: s[key] for key in TOOL_SETTINGS})

    for kind in ("full", "diff"):
        schedule = s[f"backup_{kind}_schedule"]
        timer(f"{app}-backup-{kind}", "backup", {**s, "kind": kind, "schedule": schedule}, schedule)
    server.shell(
        name="Take the first full backup: the repository holds none (a restore needs one to start from).",
        commands=[f"{pgbackrest} --type=full backup"],
        _if=lambda: host.get_fact(BackupCount, stanza=app) == 0,
    )
