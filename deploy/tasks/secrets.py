"""The app's secrets, generated on the server once and kept across runs (never in git or argv)."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.facts.server import Command
from pyinfra.operations import files, server

from deploy.operations import barrier, peer_file


@deploy("Secrets")
def secrets(s):
    """Ensure the secrets file exists (root:<app> 0640): generated on the database host, copied from
    it to an app host whose database is elsewhere (never through git, argv or this workstation's disk).
    Returns the operation that generated it (None on an app host that copies it)."""
    env_file, generated = s["env_file"], None
    if not s["database"]:
        generated = server.shell(
            name=f"Ensure {env_file} holds the secrets (generated once).",
            commands=[
                f"umask 027; rand() {{ od -An -tx1 -N\"$1\" /dev/urandom | tr -d ' \\n'; }}; "
                f'printf \'SECRET_KEY=%s\\nDATABASE_PASSWORD=%s\\n\' "$(rand 32)" "$(rand 24)" '
                f"> {env_file}.new && chown root:{s['app_name']} {env_file}.new && chmod 0640 {env_file}.new "
                f"&& mv {env_file}.new {env_file}"
            ],
            _if=lambda: host.get_fact(File, path=env_file) is None,
        )
        # A secrets file from before the app's environment took the standard names (launch.py).
        server.shell(
            name=f"Ensure {env_file} names its secrets as launch.py reads them (no TODO_ prefix).",
            commands=[
                f"sed -i -E 's/^TODO_(SECRET_KEY|SECRET_KEY_FALLBACKS|DATABASE_PASSWORD|DATABASE_USER)=/\\1=/' "
                f"{env_file}"
            ],
            # A count, never the lines: the secrets stay on the server.
            _if=lambda: host.get_fact(Command, command=f"grep -c '^TODO_' {env_file} || true") not in ("0", None),
        )
        files.file(
            name=f"Ensure {env_file} is root:{s['app_name']} 0640.",
            path=env_file,
            user="root",
            group=s["app_name"],
            mode="640",
        )
    barrier(name="Wait for every host's secrets so far (the database host makes them before the app host copies).")
    if s["database"]:
        peer_file(
            name=f"Ensure {env_file} is the database host's ({s['database'][0]}): one secret key and password.",
            peer=s["database"][0],
            src=env_file,
            dest=env_file,
            user="root",
            group=s["app_name"],
            mode="640",
            secret=True,
        )
    return generated
