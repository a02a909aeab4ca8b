"""pyinfra operations the stack needs beyond pyinfra's own: a config file that is checked before
it takes effect (the ``validate: visudo -cf %s`` pattern of Ansible's copy/template modules), and a
systemd drop-in with the daemon-reload it needs."""

import hashlib
import json
import os
from io import StringIO

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.util import get_file_sha1, get_template
from pyinfra.facts.files import File, FileContents, Sha1File
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed
from pyinfra.operations.util.files import chmod, chown, generate_color_diff

#: Where new copies are checked and previous ones kept (root 0700, on /etc's filesystem).
STAGE = "/etc/.todo-stage"
#: The command that makes STAGE (again: an operator may have removed it).
MAKE_STAGE = StringCommand("install", "-d", "-m", "700", "-o", "root", "-g", "root", STAGE)
#: Suffix of a staged new copy, checked before it is renamed over its file.
NEW = ".todo-new"
#: Suffix of the previous file kept while a set of files is checked together (restored on failure).
OLD = ".todo-old"


def render(src, data):
    """``src`` (a path relative to the repo) as a file object: rendered by Jinja2 when ``data`` is not None."""
    path = os.path.join(state.cwd or "", src)
    if data is None:
        with open(path, encoding="utf-8") as source:
            return StringIO(source.read())
    return StringIO(get_template(path).render(data))


def _log_diff(dest, content):
    """Under --diff (scripts/provision --dry-run), print what would change in ``dest``."""
    if not state.config.DIFF:
        return
    current = host.get_fact(FileContents, path=dest) or []
    host.log(f"Will {'modify' if current else 'create'} {dest}", logger.info)
    for line in generate_color_diff([line + "\n" for line in current], content.splitlines(keepends=True)):
        logger.info("  %s", line)


@operation()
def config_files(files, check, user="root", group="root"):
    """Ensure config files, each checked by ``check`` before it takes effect.

    + files: list of (src, dest, mode, data): ``src`` a path in this repo, rendered with
      Jinja2 when ``data`` (a dict) is not None; ``mode`` a string such as "644"
    + check: shell command that fails on a bad file. With ``{}`` in it, it checks each new
      file's copy at ``{}`` (staged in STAGE), which is renamed over DEST only when the check
      passes. Without ``{}`` (``nginx -t``: a config made of several files) the new files are
      swapped in together, checked, and the previous ones put back if it fails.
    + user, group: owner of every file

    A refused file never replaces the one in place, and since the one in place still
    differs from the repo, the next run checks (and refuses) it again: a broken file
    cannot pass by being "unchanged". Owners and modes drifted by hand are repaired
    without a check (they cannot make a file invalid). New and previous copies live in
    STAGE, a directory only root may enter, on the same filesystem as /etc: root never
    writes through a path another user could replace with a symlink (pg_hba.conf's
    directory is postgres's), and a rename puts each file in place atomically.
    """
    changed = []
    for src, dest, mode, data in files:
        content = render(src, data)
        remote = host.get_fact(File, path=dest)  # falsy for a symlink: it is replaced, never followed
        if not remote or get_file_sha1(content) != host.get_fact(Sha1File, path=dest):
            _log_diff(dest, content.getvalue())
            content.seek(0)
            if not changed:
                yield MAKE_STAGE
            yield StringCommand("mkdir", "-p", QuoteString(os.path.dirname(dest)))  # a new host's snippet dir
            yield from _upload_new(content, dest, user, group, mode)
            changed.append(dest)
        else:
            yield from _owner_and_mode(remote, dest, user, group, mode)
    if not changed:
        host.noop(f"{', '.join(dest for _, dest, _, _ in files)}: in place and unchanged")
        return
    if "{}" in check:
        for dest in changed:
            new = staged(dest, NEW)
            refused = f"{dest}: the new copy was refused by the check; {dest} left as it was"
            yield f"( {check.replace('{}', new)} ) || {{ rm -f {new}; echo '{refused}' >&2; exit 1; }}"
            yield StringCommand("mv -f", new, QuoteString(dest))
        return
    # Several files checked together: keep the previous ones, swap in, check, put them back on failure.
    pairs = [(_quote(d), staged(d, NEW), staged(d, OLD)) for d in changed]
    swap = " && ".join(f"{{ ! [ -e {d} ] || cp -p {d} {old}; }} && mv -f {new} {d}" for d, new, old in pairs)
    restore = "; ".join(f"if [ -e {old} ]; then mv -f {old} {d}; else rm -f {d}; fi" for d, new, old in pairs)
    cleanup = "; ".join(f"rm -f {old}" for d, new, old in pairs)
    refused = f"{', '.join(changed)}: refused by the check; the previous files are back in place"
    yield f"if {swap} && {check}; then {cleanup}; else {restore}; echo '{refused}' >&2; exit 1; fi"


def _upload_new(content, dest, user, group, mode, temp=None):
    """Commands that upload ``content`` (a file object) as ``dest``'s new copy in STAGE, owned
    ``user``:``group`` with ``mode``: the caller checks it and renames it over ``dest``. ``temp``:
    where pyinfra's upload lands first (default: its temporary directory)."""
    new = staged(dest, NEW)
    yield FileUploadCommand(content, new, remote_temp_filename=temp or host.get_temp_filename())
    yield chown(new, user, group)
    yield chmod(new, mode)


def _owner_and_mode(remote, dest, user, group, mode):
    """Commands that put back ``dest``'s owner and mode where they drifted (``remote``: its File fact)."""
    if (remote["user"], remote["group"]) != (user, group):
        yield chown(dest, user, group)
    if remote["mode"] != int(mode):
        yield chmod(dest, mode)


def staged(dest, suffix):
    """The path in STAGE of ``dest``'s new or previous copy (``/etc/nginx/nginx.conf`` ->
    ``STAGE/etc_nginx_nginx.conf.todo-new``)."""
    return f"{STAGE}/{_quote(dest).strip('/').replace('/', '_')}{suffix}"


def _quote(path):
    """``path`` for the shell; the stack's paths have no quotes or spaces, so this is only a guard."""
    if any(c in path for c in " '\"\\$`;&|<>*?()\n"):
        raise ValueError(f"unexpected character in path {path!r}")
    return path


def dropin(unit, s):
    """Ensure the stack's systemd drop-in for ``unit`` (systemd/<unit>.d/todo.conf, or
    todo.conf.j2 rendered with the settings ``s``); reload systemd if it changed."""
    src = f"systemd/{unit}.d/todo.conf"
    template = os.path.exists(os.path.join(state.cwd or "", f"{src}.j2"))
    put = (files.template if template else files.put)(
        name=f"Ensure the systemd drop-in for {unit}.",
        src=f"{src}.j2" if template else src,
        dest=f"/etc/systemd/system/{unit}.d/{s['app_name']}.conf",
        user="root",
        group="root",
        mode="644",
        **(s if template else {}),
    )
    systemd.daemon_reload(name=f"Reload systemd units: the {unit} drop-in changed.", _if=put.did_change)
    return put


def server_common(s):
    """Ensure the module every server tool imports: <lib> (/usr/local/lib/<app>, root 0755; also the
    home of launch, gunicorn.conf.py and healthcheck.py on an app host) and
    deploy/server/server_common.py in it (root 0644). Once per host, before its first tool
    (server_tool), on every host that gets one: app, database and load balancer hosts."""
    files.directory(name=f"Ensure {s['lib']} (root:root 0755).", path=s["lib"], user="root", group="root",
                    mode="755")  # fmt: skip
    files.put(
        name=f"Ensure {s['lib']}/server_common.py, which every server tool imports.",
        src="deploy/server/server_common.py",
        dest=f"{s['lib']}/server_common.py",
        user="root",
        group="root",
        mode="644",
    )


def server_tool(s, tool, settings=None):
    """Ensure the stack's server tool ``tool`` (release, backup, status, logs, maintenance):
    deploy/server/<tool>.py as /usr/local/sbin/<app>-<tool> (root 0755), and with ``settings`` (a
    dict) the settings it reads, /etc/<app>/<tool>.json (root 0644, sorted keys). It imports
    <lib>/server_common.py, which server_common has put there first."""
    app = s["app_name"]
    files.put(
        name=f"Ensure the {tool} tool /usr/local/sbin/{app}-{tool}.",
        src=f"deploy/server/{tool}.py",
        dest=f"/usr/local/sbin/{app}-{tool}",
        user="root",
        group="root",
        mode="755",
    )
    if settings is not None:
        files.put(
            name=f"Ensure the {tool} tool's settings {s['etc']}/{tool}.json.",
            src=StringIO(json.dumps(settings, indent=1, sort_keys=True) + "\n"),
            dest=f"{s['etc']}/{tool}.json",
            user="root",
            group="root",
            mode="644",
        )


def timer(unit, src, data, about):
    """Ensure a systemd service and its timer, /etc/systemd/system/<unit>.{service,timer}, from
    systemd/<src>.{service,timer}.j2 rendered with ``data`` (root 0644), systemd reloaded when
    either changed, and the timer enabled and waiting (``about``: when it fires, for the name)."""
    written = [
        files.template(
            name=f"Ensure {unit}.{suffix}.",
            src=f"systemd/{src}.{suffix}.j2",
            dest=f"/etc/systemd/system/{unit}.{suffix}",
            user="root",
            group="root",
            mode="644",
            **data,
        )
        for suffix in ("service", "timer")
    ]
    systemd.daemon_reload(name=f"Reload systemd units: {unit}'s units changed.", _if=any_changed(*written))
    systemd.service(name=f"Ensure {unit}.timer is enabled ({about}).", service=f"{unit}.timer", running=True,
                    enabled=True)  # fmt: skip


@operation()
def barrier():
    """A point every host of the run passes together: call it from one line of code that every host
    runs, and each host's earlier operations run before any host's later ones. pyinfra orders a run's
    operations per host and breaks ties by code position, so an operation only one host runs may
    otherwise run before another host's earlier ones (pyinfra/api/state.py, get_op_order). Changes
    nothing. Never call it in a loop (one call site is one point)."""
    host.noop("every host of the run reached this point")
    return
    yield  # an operation is a generator


def peer_ssh_port(name):
    """The port the inventory host ``name``'s sshd listens on, as the deploy sets it (deploy/settings.py:
    sshd_port, else the port its login arrives on, else the inventory's ssh_port, else 22)."""
    from pyinfra import inventory

    from deploy.facts import LoginPort

    other = inventory.get_host(name)
    return int(other.data.get("sshd_port") or other.get_fact(LoginPort) or other.data.get("ssh_port") or 22)


def _user_writes(user, path, text):
    """A command that writes ``text`` (public: keys, host keys, settings) to ``path`` *as* ``user``,
    mode 0600, by a rename: root never writes or chowns inside a directory another user owns."""
    script = 'umask 077 && printf %s "$1" > "$2.new" && chmod 600 "$2.new" && mv -f "$2.new" "$2"'
    return StringCommand("runuser", "-u", user, "--", "sh", "-c", QuoteString(script), "sh", QuoteString(text),
                         QuoteString(path))  # fmt: skip


@operation()
def user_files(user, texts):
    """Ensure files in ``user``'s own directories (``texts``: {path: content}, public content only, as
    it goes through a process's arguments), each written by ``user`` (0600) when its content or mode
    differs: root writing or chowning there could be sent elsewhere by a symlink the user made."""
    for path, text in texts.items():
        current = host.get_fact(File, path=path)
        if host.get_fact(Sha1File, path=path) != hashlib.sha1(text.encode()).hexdigest() or (
            current and (current["user"], current["mode"]) != (user, 600)
        ):
            yield _user_writes(user, path, text)


@operation()
def ssh_peer(user, home, peer, key_path, command):
    """Ensure ``user`` (home ``home``) trusts the inventory host ``peer`` = (name, address) over SSH,
    from what the peer has at execution time (a peer made in this same run has it only then):

    + ``~/.ssh/authorized_keys``: exactly one line, the peer's public key ``key_path``, restricted
      (``restrict``: no pty or forwarding; ``from`` the peer's address; ``command`` forced);
    + ``~/.ssh/known_hosts``: the peer's ed25519 host key, so ``user``'s ssh checks it.

    Files are written by ``user`` (user_files), 0600, only when they differ (a replaced peer's old
    key is out). Fails naming the peer when it has no key yet. authorized_keys(5), "restrict".
    """
    from pyinfra import inventory

    from deploy.facts import TextLine

    name, address = peer
    other = inventory.get_host(name)
    key = other.get_fact(TextLine, path=key_path)
    host_key = other.get_fact(TextLine, path="/etc/ssh/ssh_host_ed25519_key.pub")
    if not key or not host_key:
        yield f"echo '{name} has no {key_path} or host key yet' >&2; exit 1"
        return
    key = " ".join(key.split()[:2])
    port = peer_ssh_port(name)
    where = address if port == 22 else f"[{address}]:{port}"
    yield from user_files._inner(
        user=user,
        texts={
            f"{home}/.ssh/authorized_keys": f'restrict,from="{address}",command="{command}" {key}\n',
            f"{home}/.ssh/known_hosts": f"{where} {' '.join(host_key.split()[:2])}\n",
        },
    )


@operation()
def peer_file(peer, src, dest, user="root", group="root", mode="644", secret=False):
    """Ensure ``dest`` holds what the inventory host ``peer`` (its name) has in ``src`` at execution
    time (a peer that makes the file in this same run has it only then): e.g. the database host's
    secrets file or its certificate on the app host. Replaced only when the content differs, then
    owner and mode; fails naming the peer when it has no such file.

    ``secret``: the content crosses this workstation's memory only. pyinfra uploads through a
    temporary file as the login user; it goes in ``/run/<name>-upload`` (0700, the login user's;
    <name> is ``dest``'s file name up to its first dot: /etc/todo/todo.env -> /run/todo-upload),
    not /tmp, and is removed at once; the new file is staged in STAGE (root 0700) and renamed.
    """
    from pyinfra import inventory

    from deploy.facts import FileText, LoginUser

    text = inventory.get_host(peer).get_fact(FileText, path=src)
    if text is None:
        yield f"echo '{peer} has no {src}' >&2; exit 1"
        return
    if host.get_fact(Sha1File, path=dest) != hashlib.sha1(text.encode()).hexdigest():
        yield MAKE_STAGE
        temp = None
        if secret:
            upload = f"/run/{os.path.basename(dest).split('.')[0]}-upload"
            yield StringCommand("install", "-d", "-m", "700", "-o", host.get_fact(LoginUser), upload)
            temp = f"{upload}/{os.path.basename(dest)}"
        yield from _upload_new(StringIO(text), dest, user, group, mode, temp)
        yield StringCommand("mv", "-f", staged(dest, NEW), QuoteString(dest))
        return
    yield from _owner_and_mode(host.get_fact(File, path=dest), dest, user, group, mode)
