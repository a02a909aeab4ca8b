"""The docs tell the truth: what README.md and docs/*.md name exists, their links resolve, their safe commands run,
and the numbers and rules they state (firewall, load balancer, sandbox, PostgreSQL TLS) are read from the code.

One result per item. Commands that need the machine (``scripts/release --list``,
``scripts/provision --dry-run``) run only when pytest is given ``--hosts``, and only after
the ``machine_address`` fixture has proven the machine's route local; a command aimed at
anything but the local machine is never run.
"""

import glob
import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: The pages checked, as paths relative to the repo.
PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
#: A backticked word naming a repo path starts with one of these folders, or is one of these files.
REPO_FOLDERS = ("app/", "deploy/", "docs/", "hardening/", "nginx/", "postgresql/", "scripts/", "supervisor/")
REPO_FOLDERS += ("systemd/", "tests/", ".ci/", "logrotate.d/")
REPO_FILES = re.compile(r"(Vagrantfile|README\.md|pyproject\.toml|requirements-[^/\s]*\.txt)")
#: Help texts that mention scripts: commands run from the repo root, and scripts whose header comment is their help.
HELP_COMMANDS = [f"scripts/{name} --help" for name in ("provision", "release", "rollback", "machine")]
HEADER_COMMENTS = ["scripts/test", "scripts/up", "scripts/bootstrap"]
#: Seconds a command may take: help texts print at once; a dry run gathers facts over SSH.
HELP_TIMEOUT, MACHINE_TIMEOUT = 60, 900

FENCE = re.compile(r"^ *```[^\n]*\n(.*?)^ *```", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
SCRIPT = re.compile(r"(?<![\w./-])scripts/([A-Za-z0-9_-]+)")
TEST_NAME = re.compile(r"(test_\w+)(\[[^\]]*\])?")
TEST_DEF = re.compile(r"^\s*(?:async\s+)?def (test_\w+)\(", re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
#: A code-block command is checked when it has one of these.
RUN_FLAGS = {"--help", "-h", "--list", "--dry-run"}
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<", "&", "(", ")", "2>&1"}

#: Numbers and rules the pages state, read from the code they describe (never restated here).
#: The firewall's per-address limit of new SSH connections, and how docs/security.md says it.
NFTABLES = "hardening/nftables.conf.j2"
SSH_LIMIT = re.compile(r"limit rate over (\d+)/(\w+) burst (\d+) packets")
SSH_LIMIT_SAID = re.compile(r"new SSH connections from one address beyond (\d+) an? (\w+) after a burst of (\d+)")
#: The load balancer's nginx (the ``app_upstream`` branch of each template), and how the pages say when
#: it passes a request to the next app host: README.md in words, docs/hosts.md quoting the directive.
LB_PROXY, LB_SITE = "nginx/snippets/todo/proxy.conf.j2", "nginx/sites-available/todo.conf.j2"
LB_BRANCH = re.compile(r"\{%-?\s*if app_upstream\s*-?%\}(.*?)\{%-?\s*else\s*-?%\}", re.S)
DIRECTIVE = re.compile(r"^[ \t]*([a-z_]+)((?:[ \t]+[^\s;]+)*)[ \t]*;", re.M)
LB_SKIP_SAID = re.compile(
    r"a host that refuses, does not accept within (\d+) s or answers (\d{3}(?:(?:/|, | or )\d{3})*)\b"
    r".*? is skipped for (\d+) s"
)
QUOTED_BULLET_DIRECTIVE = re.compile(r"^- `(proxy_[a-z_]+(?: [^`]+)?)`:", re.M)
#: supervisor's sandbox: the IP allow and deny lists docs/security.md quotes.
SUPERVISOR_DROPIN = "systemd/supervisor.service.d/todo.conf.j2"
IP_DIRECTIVE_SAID = re.compile(r"(IPAddress(?:Allow|Deny))=([^`\s]+)")
#: PostgreSQL on a database host apart: its TLS floor, and the pg_hba.conf lines for the app hosts.
PG_NETWORK, PG_HBA = "postgresql/network.conf.j2", "postgresql/pg_hba.conf.j2"
TLS_FLOOR = re.compile(r"^ssl_min_protocol_version = 'TLSv(\d\.\d)'", re.M)
TLS_FLOOR_SAID = re.compile(r"TLS (\d\.\d) at least")


@cache
def text(page):
    """The page's text."""
    return (REPO / page).read_text(encoding="utf-8")


def prose(page):
    """The page without its fenced code blocks."""
    return FENCE.sub("", text(page))


def flat(page):
    """The page's prose with every run of whitespace one space, so a sentence reads the same across lines."""
    return " ".join(prose(page).split())


@cache
def source(path):
    """A code file's text."""
    return (REPO / path).read_text(encoding="utf-8")


def lb_branch(path):
    """The load balancer's part of an nginx template, its ``{% if app_upstream %}`` branch, without comments."""
    match = LB_BRANCH.search(source(path))
    assert match, f"{path}: no {{% if app_upstream %}} ... {{% else %}} branch: where is the load balancer's part?"
    return re.sub(r"#[^\n]*", "", match.group(1))


def directives(body):
    """{name: [arguments, ...]}: every one-line nginx directive of a template's text."""
    found = {}
    for name, args in DIRECTIVE.findall(body):
        found.setdefault(name, []).append(" ".join(args.split()))
    return found


def code_lines(page):
    """Every line of the page's fenced code blocks."""
    return [line for block in FENCE.findall(text(page)) for line in block.splitlines()]


def inline_code(page):
    """The backticked spans of the page's prose."""
    return INLINE_CODE.findall(prose(page))


@cache
def help_texts():
    """{label: (exit status, text)} of every help text that may mention scripts."""
    texts = {}
    for command in HELP_COMMANDS:
        script, *args = command.split()
        run = subprocess.run(
            [str(REPO / script), *args], cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=HELP_TIMEOUT,
        )  # fmt: skip
        texts[command] = (run.returncode, run.stdout + run.stderr)
    for script in HEADER_COMMENTS:
        header = []
        for line in (REPO / script).read_text(encoding="utf-8").splitlines()[1:]:  # after the #! line
            if not line.startswith("#"):
                break
            header.append(line)
        texts[f"{script} (header comment)"] = (0, "\n".join(header))
    return texts


def mentions(pattern, sources):
    """{match: sorted labels of the sources it appears in}, for every match of ``pattern``."""
    found = {}
    for label, body in sources:
        for match in pattern.finditer(body):
            found.setdefault(match.group(0), set()).add(label)
    return {name: sorted(labels) for name, labels in sorted(found.items())}


def mentioned_scripts():
    """{scripts/<name>: where it is mentioned}, from the pages and the help texts."""
    sources = [(page, text(page)) for page in PAGES] + [(label, body) for label, (_, body) in help_texts().items()]
    return mentions(SCRIPT, sources)


def _path_words(words):
    """The words that name a repo path (placeholders and URLs left out)."""
    for word in words:
        word = word.lstrip("('\"").rstrip(".,;:)'\"").split("::", 1)[0]
        if any(c in word for c in "<{$") or "://" in word:
            continue
        if word.startswith(REPO_FOLDERS) or REPO_FILES.fullmatch(word):
            yield word


def mentioned_paths():
    """{repo path: where it is mentioned}: words of backticked spans and of code blocks."""
    found = {}
    for page in PAGES:
        words = [w for span in inline_code(page) for w in span.split()]
        words += [w for line in code_lines(page) for w in line.split()]
        for word in _path_words(words):
            found.setdefault(word, set()).add(page)
    return {path: sorted(pages) for path, pages in sorted(found.items())}


def mentioned_tests():
    """{test name: where it is mentioned}: backticked ``test_...`` spans, without a ``[...]`` suffix."""
    found = {}
    for page in PAGES:
        for span in inline_code(page):
            match = TEST_NAME.fullmatch(span)
            if match:
                found.setdefault(match.group(1), set()).add(page)
    return {name: sorted(pages) for name, pages in sorted(found.items())}


@cache
def defined_tests():
    """Names of the test functions defined under tests/."""
    return {name for path in (REPO / "tests").rglob("*.py") for name in TEST_DEF.findall(path.read_text("utf-8"))}


def slug(heading):
    """GitHub's anchor for a heading: links and code marks dropped, lower-case, punctuation dropped, spaces to '-'."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


@cache
def anchors(page):
    """The anchors of a page's headings (repeated ones numbered as GitHub does)."""
    seen, found = {}, set()
    for _, heading in HEADING.findall(prose(page)):
        base = slug(heading)
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return found


def links():
    """(page, target) of every relative link in the pages' prose."""
    return [
        (page, target)
        for page in PAGES
        for target in LINK.findall(prose(page))
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto:
    ]


def has_help_option(script):
    """True when ``script`` answers --help itself (argparse, or a ``--help)`` case in bash)."""
    path = REPO / script
    if not path.is_file():
        return False
    source = path.read_text(encoding="utf-8")
    if "python" in source.splitlines()[0]:
        return "argparse" in source
    return re.search(r"--help\)", source) is not None


def verdict(tokens):
    """What to do with a code block's command: ("run", None), ("machine", None), ("skip", why) or ("fail", why)."""
    script, args = tokens[0], tokens[1:]
    if any(t in SHELL_OPERATORS for t in tokens):
        return "skip", "a compound command: never run"
    if any(c in t for t in args for c in "[<{") or any(t.isupper() and not t.startswith("-") for t in args):
        return "skip", "a synopsis with placeholders, not a command"
    if "--help" in args or "-h" in args:
        if args not in (["--help"], ["-h"]):
            return "skip", f"only a plain `{script} --help` is run"
        if not has_help_option(script):
            return "fail", f"{script} has no --help: following this line would run it"
        return "run", None
    if script == "scripts/release" and "--list" in args:
        rest = [t for t in args if t != "--list"]
        return ("machine", None) if rest in ([], ["--target", "local"]) else ("skip", f"not the local machine: {rest}")
    if script == "scripts/provision" and "--dry-run" in args:
        rest, targets = [t for t in args if t != "--dry-run"], []
        while rest:
            token = rest.pop(0)
            if token == "--set" and rest and "=" in rest[0]:
                rest.pop(0)
            elif token.startswith("-"):
                return "skip", f"option {token}: never run"
            else:
                targets.append(token)
        return ("machine", None) if targets in ([], ["local"]) else ("skip", f"not the local machine: {targets}")
    return "skip", "not a command this test runs"


def block_commands():
    """(page, line, tokens) of every code-block line that runs a script with --help, --list or --dry-run."""
    found = []
    for page in PAGES:
        for line in code_lines(page):
            line = line.strip().removeprefix("$ ")
            try:
                lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
                lexer.whitespace_split, lexer.commenters = True, "#"
                tokens = list(lexer)
            except ValueError:
                continue
            candidate = tokens and tokens[0].startswith("scripts/") and RUN_FLAGS & set(tokens)
            if candidate and (page, line, tokens) not in found:
                found.append((page, line, tokens))
    return found


def where(pages):
    """The places a name is mentioned, for a failure message."""
    return ", ".join(pages)


@pytest.mark.parametrize("label", sorted(help_texts()))
def test_help_text_can_be_read(label):
    """Each help text the script check reads prints with exit status 0."""
    status, body = help_texts()[label]
    assert status == 0 and body.strip(), f"{label}: exit {status}\n{body[-2000:]}"


@pytest.mark.parametrize(("script", "sources"), list(mentioned_scripts().items()), ids=list(mentioned_scripts()))
def test_mentioned_script_exists_and_is_executable(script, sources):
    """A scripts/<name> the docs or a help text mention is an executable file."""
    path = REPO / script
    assert path.is_file(), f"{script} (mentioned in {where(sources)}) does not exist"
    assert path.stat().st_mode & 0o111, f"{script} (mentioned in {where(sources)}) is not executable"


@pytest.mark.parametrize(("path", "pages"), list(mentioned_paths().items()), ids=list(mentioned_paths()))
def test_mentioned_repo_path_exists(path, pages):
    """A repo path in backticks or a code block exists (a glob pattern matches something)."""
    exists = glob.glob(path, root_dir=REPO) if any(c in path for c in "*?[") else (REPO / path).exists()
    assert exists, f"{path} (mentioned in {where(pages)}) does not exist"


@pytest.mark.parametrize(("name", "pages"), list(mentioned_tests().items()), ids=list(mentioned_tests()))
def test_mentioned_test_is_defined(name, pages):
    """A backticked test name is a test function defined under tests/."""
    defined = name in defined_tests()
    assert defined, f"{name} (mentioned in {where(pages)}) is not defined under tests/"


@pytest.mark.parametrize(("page", "target"), links(), ids=[f"{page}->{target}" for page, target in links()])
def test_link_resolves(page, target):
    """A relative link points to an existing file, and its anchor to an existing heading."""
    path, _, anchor = target.partition("#")
    linked = (REPO / page).parent / path if path else REPO / page
    assert linked.exists(), f"{page}: link to {target}: {path} does not exist"
    if anchor and linked.suffix == ".md":
        page_of = str(linked.resolve().relative_to(REPO))
        assert anchor in anchors(page_of), f"{page}: link to {target}: no heading #{anchor} in {page_of}"


@pytest.mark.parametrize("kind", ["--help", "scripts/release --list", "scripts/provision --dry-run local"])
def test_code_blocks_keep_a_command_of_each_kind(kind):
    """The code blocks keep a --help command, `scripts/release --list` and a local dry run, so each kind is checked."""
    commands = [shlex.join(tokens) for _, _, tokens in block_commands() if verdict(tokens)[0] in ("run", "machine")]
    assert any(kind in command for command in commands), f"no runnable `{kind}` in a code block: {commands}"


@pytest.mark.parametrize(
    ("page", "line", "tokens"),
    block_commands(),
    ids=[f"{page}: {shlex.join(tokens)}" for page, _, tokens in block_commands()],
)
def test_code_block_command_runs(request, page, line, tokens):
    """A safe command of a code block exits 0: --help always, the machine's read-only ones only with --hosts."""
    action, why = verdict(tokens)
    if action == "skip":
        pytest.skip(why)
    if action == "fail":
        pytest.fail(f"{page}: `{line}`: {why}")
    timeout = HELP_TIMEOUT
    if action == "machine":
        if not request.config.getoption("hosts", default=None):
            pytest.skip("needs the machine: run with --hosts")
        request.getfixturevalue("machine_address")  # the route guard: stops the run unless the link is local
        timeout = MACHINE_TIMEOUT
    command = [str(REPO / tokens[0]), *tokens[1:]]
    run = subprocess.run(command, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    assert run.returncode == 0, f"{page}: `{line}` exited {run.returncode}\n{(run.stdout + run.stderr)[-3000:]}"


def test_example_inventory_lists_every_setting_at_its_default():
    """deploy/inventories/example.py shows every setting of deploy/settings.py, with its default."""
    import runpy

    from deploy.settings import DEFAULTS

    (_, data), *_ = runpy.run_path(str(REPO / "deploy/inventories/example.py"))["hosts"]
    assert {key: data.get(key, "missing") for key in DEFAULTS} == DEFAULTS


def test_security_page_states_the_ssh_rate_limit_of_the_firewall():
    """docs/security.md's SSH connection limit (a rate after a burst) is the nftables rule's, for IPv4 and IPv6."""
    limits = set(SSH_LIMIT.findall(source(NFTABLES)))
    assert len(limits) == 1, f"{NFTABLES}: expected one SSH limit (rate, unit, burst), found {sorted(limits)}"
    said = SSH_LIMIT_SAID.findall(flat("docs/security.md"))
    assert said, "docs/security.md no longer says the SSH limit as 'beyond N a second after a burst of M'"
    assert set(said) == limits, f"docs/security.md says (rate, unit, burst) {said}; {NFTABLES} has {limits}"


def test_readme_says_when_the_load_balancer_skips_an_app_host():
    """README.md's sentence on the passive health checks: the connect timeout, the statuses that take a
    host out (``proxy_next_upstream http_NNN``) and for how long (``fail_timeout``), all the lb's own."""
    proxy, site = directives(lb_branch(LB_PROXY)), lb_branch(LB_SITE)
    (next_upstream,) = proxy["proxy_next_upstream"]
    statuses = sorted(c.removeprefix("http_") for c in next_upstream.split() if c.startswith("http_"))
    (connect,) = proxy["proxy_connect_timeout"]
    fail_timeouts = set(re.findall(r"\bfail_timeout=(\d+)s\b", site))
    said = LB_SKIP_SAID.findall(flat("README.md"))
    assert len(said) == 1, "README.md no longer says 'a host that refuses, does not accept within N s or answers ...'"
    (within, answers, skipped), code = said[0], (connect, statuses, fail_timeouts)
    assert (f"{within}s", sorted(re.findall(r"\d{3}", answers)), {skipped}) == code, (
        f"README.md: within {within} s, answers {answers}, skipped for {skipped} s; the load balancer "
        f"({LB_PROXY}, {LB_SITE}): proxy_connect_timeout {connect}, proxy_next_upstream {next_upstream}, "
        f"fail_timeout {sorted(fail_timeouts)}"
    )


def test_hosts_page_quotes_the_load_balancers_proxy_directives():
    """A docs/hosts.md bullet that opens with an nginx ``proxy_`` directive quotes the load balancer's own,
    ``proxy_next_upstream`` (the statuses that pass a request on) among them."""
    proxy = directives(lb_branch(LB_PROXY))
    quoted = QUOTED_BULLET_DIRECTIVE.findall(prose("docs/hosts.md"))
    assert any(q.startswith("proxy_next_upstream ") for q in quoted), "docs/hosts.md: no bullet on proxy_next_upstream"
    for directive in quoted:
        name, _, args = directive.partition(" ")
        has = proxy.get(name, [])
        assert args in has, f"docs/hosts.md quotes `{directive}`; {LB_PROXY} has {name} {has}"


def test_security_page_quotes_supervisors_ip_address_lists():
    """Each ``IPAddressAllow=``/``IPAddressDeny=`` value docs/security.md quotes is in supervisor's drop-in, and
    the page says loopback plus the database host's address exactly when the drop-in allows that address."""
    code = {}
    for name, values in re.findall(r"^(IPAddress(?:Allow|Deny))=(.*)$", source(SUPERVISOR_DROPIN), re.M):
        values = re.sub(r"\{%.*?%\}", " ", values)  # Jinja's if/endif out; an expression stays one value
        code.setdefault(name, set()).update(re.findall(r"\{\{.*?\}\}|[^\s{}]+", values))
    said = IP_DIRECTIVE_SAID.findall(" ".join(inline_code("docs/security.md")))
    assert {name for name, _ in said} == {"IPAddressAllow", "IPAddressDeny"}, f"docs/security.md quotes {said}"
    for name, value in said:
        assert value in code.get(name, set()), f"docs/security.md: `{name}={value}`; {SUPERVISOR_DROPIN}: {code}"
    apart = sorted(value for value in code.get("IPAddressAllow", ()) if value.startswith("{{"))
    says_apart = "loopback plus the database host's address" in flat("docs/security.md")
    assert says_apart == bool(apart) and all("database" in value for value in apart), (
        f"docs/security.md {'says' if says_apart else 'does not say'} 'loopback plus the database host's address'; "
        f"{SUPERVISOR_DROPIN} allows beyond its literal addresses: {apart}"
    )


def test_security_page_states_postgresqls_tls_for_the_app_hosts():
    """docs/security.md's TLS floor is network.conf's, and the pg_hba.conf lines for the app hosts are the
    ``hostssl`` lines it names (no plaintext line)."""
    floors = TLS_FLOOR.findall(source(PG_NETWORK))
    assert len(floors) == 1, f"{PG_NETWORK}: no single ssl_min_protocol_version: {floors}"
    said = TLS_FLOOR_SAID.findall(flat("docs/security.md"))
    assert said and set(said) == set(floors), f"docs/security.md says TLS {said} at least; {PG_NETWORK}: {floors}"
    kinds = {line.split()[0] for line in source(PG_HBA).splitlines() if "{{ address }}" in line and line[:1] != "#"}
    assert kinds == {"hostssl"}, f"{PG_HBA}: the app hosts' lines are {sorted(kinds)}, not hostssl only"
    assert "hostssl" in inline_code("docs/security.md"), "docs/security.md no longer names `hostssl`"
