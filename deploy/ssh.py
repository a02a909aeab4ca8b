"""How this workstation reaches a host with the OpenSSH client: the TARGETs the operator's
scripts take (local, vagrant, USER@HOST[:PORT], an inventory file), each host's pyinfra data
(ssh_config_file, ssh_key, ssh_user, ssh_port, ssh_known_hosts_file, ...) and what runs
there over SSH. Shared by every operator script (scripts/provision asks ``python -m deploy.ssh``:
see main) and the deploy's login proofs (deploy/tasks/ssh.py)."""

import os
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from deploy.settings import DEFAULTS

REPO = Path(__file__).resolve().parent.parent
#: The pyinfra host data keys that say how to reach a host.
SSH_KEYS = ("ssh_config_file", "ssh_key", "ssh_user", "ssh_port", "ssh_known_hosts_file")
SSH_KEYS += ("ssh_strict_host_key_checking",)
#: The inventories of the TARGETs local (scripts/machine's machine) and vagrant, relative to the repo.
INVENTORIES = {"local": "deploy/inventories/local.py", "vagrant": "deploy/inventories/vagrant.py"}


class TargetError(Exception):
    """A TARGET names no reachable host; the message says why (empty: another command said it),
    ``status`` is the exit status for the script (2 bad usage, 1 the route guard refused)."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status


class InventoryError(TargetError):
    """An inventory file that names no hosts (scripts/provision exits 1 on it, the other scripts 2)."""


def login_user(data):
    """The user to log in as: the inventory's, but the admin user where it says root (the stack
    closes root's SSH login at first contact, once the admin user has proven it can log in)."""
    user = data.get("ssh_user")
    return (data.get("admin_user") or DEFAULTS["admin_user"]) if user == "root" else user


def try_login(data, destination, user, *command):
    """On this workstation: a new SSH connection as ``user`` running ``command`` (10 s to connect,
    60 s in all); returns (the argv, the CompletedProcess)."""
    cmd = [*ssh_command(data, user=user), "-o", "ConnectTimeout=10", destination, *command]
    return cmd, subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def ssh_command(data, user=None):
    """``ssh`` argv without the destination, for a host with pyinfra ``data``, as ``user``
    (default: login_user(data)); BatchMode: a refused key fails at once instead of prompting."""
    cmd = ["ssh", "-o", "BatchMode=yes"]
    user = user or login_user(data)
    # Once provisioned, sshd listens on the inventory's sshd_port (it moved there), if it names one.
    data = {**data, "ssh_port": data.get("sshd_port") or data.get("ssh_port")}
    for key, flag in (("ssh_config_file", "-F"), ("ssh_key", "-i"), ("ssh_port", "-p")):
        if data.get(key):
            value = str(data[key])
            cmd += [flag, str(REPO / value) if key in ("ssh_config_file", "ssh_key") else value]
    if user:
        cmd += ["-l", user]
    if data.get("ssh_known_hosts_file"):
        cmd += ["-o", f"UserKnownHostsFile={data['ssh_known_hosts_file']}"]
    if data.get("ssh_strict_host_key_checking"):
        cmd += ["-o", f"StrictHostKeyChecking={data['ssh_strict_host_key_checking']}"]
    return cmd


def inventory_hosts(path):
    """(name, data) for every host in a pyinfra inventory file: each list at module level is a group.
    Each host's data gains ``_roles``: its role groups (deploy/roles.py), all roles when the file
    names none."""
    from deploy.roles import ROLES

    found, groups = {}, {}
    for group, value in runpy.run_path(str(path)).items():
        if isinstance(value, list) and not group.startswith("_"):
            for entry in value:
                name, data = (entry, {}) if isinstance(entry, str) else entry
                found.setdefault(name, {}).update(data)
                groups.setdefault(name, set()).add(group)
    if not found:
        raise InventoryError(f"inventory {path}: no hosts")
    declared = any(role in held for held in groups.values() for role in ROLES)
    for name, data in found.items():
        data["_roles"] = tuple(role for role in ROLES if role in groups[name] or not declared)
    guard_routes(found.values())
    return list(found.items())


def guard_routes(datas):
    """Exit (TargetError) unless every ``private_address`` on the local machines' network
    (192.168.56.0/24) is routed on this box: with a local machine down, packets to it would leave."""
    for data in datas:
        address = data.get("private_address") or ""
        check = [REPO / "scripts/machine", "check-route", address]
        if address.startswith("192.168.56.") and subprocess.run(check, stdout=subprocess.DEVNULL).returncode:
            raise TargetError("", status=1)  # scripts/machine said why


def route_is_local():
    """Exit unless 192.168.56.10 is routed on this box (scripts/machine check-route says why)."""
    if subprocess.run([REPO / "scripts/machine", "check-route", "192.168.56.10"], stdout=subprocess.DEVNULL).returncode:
        raise TargetError("", status=1)  # scripts/machine said why


def parse(target):
    """TARGET read, touching nothing: ``("inventory", path)`` for local and vagrant (the repo's
    inventories, relative to it) or FILE.py; ``("login", (user, host, port))`` for USER@HOST[:PORT]
    (port None when it names none); TargetError for anything else."""
    if target in INVENTORIES:
        return "inventory", INVENTORIES[target]
    if target.endswith(".py"):
        return "inventory", target
    if "@" in target:
        user, _, hostport = target.partition("@")
        host, _, port = hostport.partition(":")
        if not user or not host or (port and not port.isdigit()):
            raise TargetError(f"bad target {target}: expected USER@HOST[:PORT]")
        return "login", (user, host, int(port) if port else None)
    raise TargetError(f"bad target {target}: expected local, vagrant, USER@HOST[:PORT] or an inventory .py file")


def resolve(target):
    """The hosts of TARGET as (name, data), the same TARGETs as scripts/provision."""
    kind, value = parse(target)
    if kind == "login":
        user, host, port = value
        return [(host, {"ssh_user": user, **({"ssh_port": port} if port else {})})]
    if target == "vagrant":
        (REPO / ".vagrant").mkdir(exist_ok=True)
        with open(REPO / ".vagrant/ssh-config", "w") as out:
            if subprocess.run(["vagrant", "ssh-config"], cwd=REPO, stdout=out).returncode:
                raise TargetError("vagrant ssh-config failed: is the VM up? (vagrant up)")
    if target in INVENTORIES:
        route_is_local()
        return inventory_hosts(REPO / value)
    if not Path(target).is_file():
        raise TargetError(f"inventory {target}: no such file")
    return inventory_hosts(Path(target))


def pyinfra_args(target):
    """scripts/provision's pyinfra arguments for TARGET, once resolve() has checked it: the inventory
    file, or ``--user USER [--sudo] [--port PORT] HOST`` for USER@HOST[:PORT] (root needs no sudo: a
    fresh server may not have it yet; anyone else does). Provision also refuses vagrant when it is
    not installed, and local before scripts/machine has made the machine's SSH config."""
    kind, value = parse(target)
    if target == "vagrant" and not shutil.which("vagrant"):
        raise TargetError("vagrant is not installed")
    found = resolve(target)
    if kind == "inventory":
        if target == "local" and not Path(found[0][1]["ssh_config_file"]).is_file():
            raise TargetError("no local machine: scripts/machine start")
        return [value]
    user, host, port = value
    return ["--user", user, *([] if user == "root" else ["--sudo"]), *(["--port", str(port)] if port else []), host]


def on_port(target, port):
    """TARGET once this run moved SSH to ``port``: USER@HOST:PORT for USER@HOST[:PORT] (an inventory
    names its own ssh_port)."""
    kind, value = parse(target)
    return f"{value[0]}@{value[1]}:{port}" if kind == "login" else target


def hosts(target, prog, role=None):
    """A Host for every host of TARGET (with ``role``: those holding it, deploy/roles.py), for the
    operator's scripts; on a TargetError, print it as ``prog: message`` (unless another command said
    why already) and exit with its status."""
    try:
        found = [Host(name, data) for name, data in resolve(target)]
        return [h for h in found if role is None or role in h.roles]
    except TargetError as error:
        if str(error):
            print(f"{prog}: {error}", file=sys.stderr)
        raise SystemExit(error.status) from None


class Host:
    """One host of the inventory: how to reach it over SSH, and its push repository."""

    def __init__(self, name, data):
        self.name = name
        self.data = data
        self.destination = data.get("ssh_hostname") or name
        self.roles = data.get("_roles", ("lb", "app", "db", "backup"))
        self.app = data.get("app_name") or DEFAULTS["app_name"]
        self.branch = data.get("deploy_branch") or DEFAULTS["deploy_branch"]
        # The app's folder in the repository a release ships ("" : the whole repository).
        self.app_root = DEFAULTS["app_root"] if data.get("app_root") is None else data["app_root"]
        # root logs in only at first contact: after it, the admin user (deploy/ssh.py).
        self.ssh = ssh_command(data)

    def tool(self, *args, tool="release", stdin=None, prefix=False):
        """Run the stack's ``tool`` (release, backup) on the host through sudo, ``stdin`` (a file or
        None) as its standard input; return its exit status. With ``prefix``, each line it prints
        goes to stdout as ``[name] line`` (hosts run side by side)."""
        tool = f"/usr/local/sbin/{self.app}-{tool}"
        # ssh joins its arguments into one command line for the remote shell: quote each one.
        cmd = [*self.ssh, self.destination, "sudo", "-n", tool, *map(shlex.quote, args)]
        if not prefix:
            return subprocess.run(cmd, stdin=stdin).returncode
        with subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:
                print(f"[{self.name}] {line}", end="", flush=True)
        return proc.returncode

    def read(self, *command):
        """The output of ``command`` on the host (as the login user), or None when it fails;
        TargetError when SSH itself fails."""
        done = subprocess.run([*self.ssh, self.destination, *command], capture_output=True, text=True)
        if done.returncode == 255:
            raise TargetError(f"{self.name}: SSH failed (unreachable host or refused key)")
        return done.stdout.strip() if done.returncode == 0 else None

    def current(self):
        """The release serving on the host (``/srv/<app>/current``), or None."""
        target = self.read("readlink", f"/srv/{self.app}/current")
        return target.rsplit("/", 1)[-1] if target else None

    def commit_of(self, release):
        """The commit a release kept on the host was built from (its .release.json), or None."""
        import json

        meta = self.read("cat", f"/srv/{self.app}/releases/{release}/.release.json")
        return json.loads(meta)["commit"] if meta else None

    def has_release(self):
        """True when the host has a current release; TargetError when SSH fails."""
        return self.read("test", "-e", f"/srv/{self.app}/current") is not None

    def push(self, repo, commit):
        """git push COMMIT to the deploy branch; the hook's progress is printed as it comes."""
        url = f"ssh://{self.destination}/srv/{self.app}/deploy.git"
        # A new login, never a shared (ControlMaster) one: a session that logged in before
        # provisioning added the user to the deploy group would lack the group a push needs.
        env = {**os.environ, "GIT_SSH_COMMAND": shlex.join([*self.ssh, "-o", "ControlPath=none"])}
        return subprocess.run(
            ["git", "-C", repo, "push", "--force", url, f"{commit}:refs/heads/{self.branch}"], env=env
        ).returncode


def main(argv):
    """scripts/provision's questions about a TARGET (its messages and exit statuses): ``pyinfra-args
    TARGET`` prints pyinfra's arguments for it, each ended by a NUL; ``on-port TARGET PORT`` prints
    the TARGET to log in to once SSH moved to PORT."""
    match argv:
        case ["pyinfra-args", target]:
            try:
                args = pyinfra_args(target)
            except TargetError as error:
                if str(error):
                    print(f"provision: {error}", file=sys.stderr)
                return 1 if isinstance(error, InventoryError) else error.status
            except Exception as error:
                if not target.endswith(".py"):
                    raise
                # An inventory file Python cannot run: its error, without a traceback.
                print(f"provision: inventory {target}: {type(error).__name__}: {error}", file=sys.stderr)
                return 1
            sys.stdout.write("".join(f"{arg}\0" for arg in args))
            return 0
        case ["on-port", target, port]:
            print(on_port(target, port))
            return 0
    print("usage: python -m deploy.ssh pyinfra-args TARGET | on-port TARGET PORT", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
