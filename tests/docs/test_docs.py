"""The docs tell the truth: what README.md and docs/*.md name exists, their links resolve, their safe commands run.

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


@cache
def text(page):
    """The page's text."""
    return (REPO / page).read_text(encoding="utf-8")


def prose(page):
    """The page without its fenced code blocks."""
    return FENCE.sub("", text(page))


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
