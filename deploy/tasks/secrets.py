"""The app's secrets, generated on the server once and kept across runs (never in git or argv)."""

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import File
from pyinfra.operations import files, server


@deploy("Secrets")
def secrets(s):
    """Ensure the secrets file exists (root:<app> 0640); returns the operation that generated it."""
    env_file = s["env_file"]
    generated = server.shell(
        name=f"Ensure {env_file} holds the secrets (generated once).",
        commands=[
            f"umask 027; rand() {{ od -An -tx1 -N\"$1\" /dev/urandom | tr -d ' \\n'; }}; "
            f'printf \'TODO_SECRET_KEY=%s\\nTODO_DATABASE_PASSWORD=%s\\n\' "$(rand 32)" "$(rand 24)" > {env_file}.new '
            f"&& chown root:{s['app_name']} {env_file}.new && chmod 0640 {env_file}.new && mv {env_file}.new {env_file}"
        ],
        _if=lambda: host.get_fact(File, path=env_file) is None,
    )
    files.file(
        name=f"Ensure {env_file} is root:{s['app_name']} 0640.",
        path=env_file,
        user="root",
        group=s["app_name"],
        mode="640",
    )
    return generated
