"""Apps nobody here wrote, deployed unmodified by the stack: each on a local machine of its own,
fetched from PyPI at a pinned version by the test (nothing of theirs is kept in this repository).

The machine is started by scripts/test (``scripts/machine --name flaskr --address 192.168.56.40
start``); these fixtures make the operator's repository, provision the machine from bare with it
(scripts/provision INVENTORY --app REPO: the stack, then the app's first release) and give the
tests its address, a testinfra host and a way to commit and release changes."""

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.conftest import REPO, named_machine, run_script

#: Flask's tutorial app, flaskr, comes from Flask's sdist at this version (examples/tutorial).
FLASK_SDIST = "flask==3.1.2"
FLASKR_ADDRESS = "192.168.56.40"
FLASKR_INVENTORY = "deploy/inventories/local-flaskr.py"
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "operator", "GIT_AUTHOR_EMAIL": "operator@localhost",
           "GIT_COMMITTER_NAME": "operator", "GIT_COMMITTER_EMAIL": "operator@localhost"}  # fmt: skip


class AppRepo:
    """The operator's git repository of an app: commit changes, release them, roll back."""

    def __init__(self, path, inventory):
        self.path, self.inventory = path, inventory
        self.git("init", "--quiet", "--initial-branch=main")
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", "the app, as published")

    def git(self, *args):
        return subprocess.run(["git", *args], cwd=self.path, env=GIT_ENV, check=True, capture_output=True,
                              text=True).stdout  # fmt: skip

    def commit(self, message, change):
        """``change(path)`` edits the tree; commit it; return the commit id."""
        change(self.path)
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def release(self, *args):
        """scripts/release --app REPO --target INVENTORY ARGS: (exit status, output)."""
        return run_script("scripts/release", "--app", str(self.path), "--target", self.inventory, *args)

    def run(self, *command):
        """scripts/run --target INVENTORY -- COMMAND: (exit status, output)."""
        return run_script("scripts/run", "--target", self.inventory, "--", *command)


def flask_example(tmp, example):
    """Flask's ``examples/<example>`` from its sdist on PyPI (pip download), unpacked under ``tmp``."""
    subprocess.run([str(REPO / ".venv/bin/pip"), "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                    "--dest", str(tmp), FLASK_SDIST], check=True)  # fmt: skip
    (sdist,) = tmp.glob("flask-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp, filter="data")
    (top,) = [p for p in tmp.iterdir() if p.is_dir()]
    return top / "examples" / example


@pytest.fixture(scope="session")
def flaskr(tmp_path_factory):
    """flaskr's repository, as an operator would make it from Flask's sdist, released onto its own
    machine from bare by scripts/provision (the stack, then the first release)."""
    tmp = tmp_path_factory.mktemp("flaskr")
    source = flask_example(tmp / "sdist", "tutorial")
    path = tmp / "flaskr"
    source.rename(path)
    repo = AppRepo(path, FLASKR_INVENTORY)
    named_machine("flaskr", FLASKR_ADDRESS)  # its route is proven local first
    status, out = run_script("scripts/provision", FLASKR_INVENTORY, "--app", str(path), timeout=1500)
    assert status == 0, out[-6000:]
    return repo


@pytest.fixture(scope="session")
def flaskr_host(flaskr):
    """The flaskr machine as a testinfra host (root through sudo)."""
    return named_machine("flaskr", FLASKR_ADDRESS)


@pytest.fixture(scope="session")
def flaskr_site(flaskr_host, tmp_path_factory):
    """https://192.168.56.40, its certificate trusted by every requests call."""
    return trust_site(flaskr_host, "flaskr", FLASKR_ADDRESS, tmp_path_factory)


def trust_site(host, app, address, tmp_path_factory):
    """https://ADDRESS, with ``app``'s certificate (read over SSH, never from the handshake it is to
    check) trusted by every requests call of the run (REQUESTS_CA_BUNDLE): one app per pytest run."""
    cert = tmp_path_factory.mktemp("tls") / f"{app}.crt"
    cert.write_text(host.check_output(f"cat /etc/ssl/{app}/{app}.crt") + "\n")
    os.environ["REQUESTS_CA_BUNDLE"] = str(cert)
    return f"https://{address}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium (tests/browser's flags) trusting only the site's certificate, the one the
    app's ``*_site`` fixture read over SSH (REQUESTS_CA_BUNDLE): request that fixture first."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.browser.conftest import FLAGS, spki_sha256

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"]:
        options.add_argument(flag)
    pin = spki_sha256(Path(os.environ["REQUESTS_CA_BUNDLE"]).read_bytes())
    options.add_argument(f"--ignore-certificate-errors-spki-list={pin}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def current(host, app):
    """The release /srv/<app>/current names."""
    return host.check_output(f"readlink /srv/{app}/current").rsplit("/", 1)[-1]


def process_release(host, program):
    """The release the supervisor program's process runs (its working directory), and its PID."""
    pid = host.check_output(f"supervisorctl pid {program}")
    return host.check_output(f"readlink /proc/{pid}/cwd").rsplit("/", 1)[-1], pid


#: ihatemoney's releases on PyPI the tests ship: the first, then the next (the same migrations' head,
#: so a rollback to the first works: an older release refuses a newer schema at start).
IHATEMONEY = ("7.2.0", "7.2.1")
IHATEMONEY_ADDRESS = "192.168.56.41"
IHATEMONEY_INVENTORY = "deploy/inventories/local-ihatemoney.py"
#: The settings file ihatemoney's docs have an operator write (read through IHATEMONEY_SETTINGS_FILE_PATH).
IHATEMONEY_CFG = """import os

SQLALCHEMY_DATABASE_URI = os.environ["DATABASE_URL"]
SECRET_KEY = os.environ["SECRET_KEY"]
"""
#: Its Procfile: gunicorn on ihatemoney's WSGI module, its migrations, and a worker the operator adds.
IHATEMONEY_PROCFILE = (
    "web: gunicorn ihatemoney.wsgi:application\n"
    # Its migrations are in its installed package: `ihatemoney db upgrade` alone looks in ./migrations.
    "release: ihatemoney db upgrade --directory "
    "\"$(python -c 'import ihatemoney, os; print(os.path.dirname(ihatemoney.__file__))')/migrations\"\n"
    'worker: while sleep 5; do echo "worker alive"; done\n'
)


def ihatemoney_requirements(version):
    """The operator's requirements.txt: ihatemoney pinned, PostgreSQL's driver, gunicorn (no hashes)."""
    return f"ihatemoney=={version}\npsycopg2-binary==2.9.13\ngunicorn==27.0.1\n"


def ihatemoney_repo(path, inventory):
    """The operator's thin repository of ihatemoney made at ``path`` (a new directory): its pinned
    requirements (the first version), its Procfile and its settings file; an AppRepo for ``inventory``."""
    path.mkdir()
    (path / "requirements.txt").write_text(ihatemoney_requirements(IHATEMONEY[0]))
    (path / "Procfile").write_text(IHATEMONEY_PROCFILE)
    (path / "ihatemoney.cfg").write_text(IHATEMONEY_CFG)
    return AppRepo(path, inventory)


@pytest.fixture(scope="session")
def ihatemoney(tmp_path_factory):
    """The operator's thin repository of ihatemoney, released onto its own machine from bare by
    scripts/provision; (the repository, the provisioning's output)."""
    repo = ihatemoney_repo(tmp_path_factory.mktemp("ihatemoney") / "ihatemoney", IHATEMONEY_INVENTORY)
    path = repo.path
    named_machine("ihatemoney", IHATEMONEY_ADDRESS)
    status, out = run_script("scripts/provision", IHATEMONEY_INVENTORY, "--app", str(path), timeout=1500)
    assert status == 0, out[-6000:]
    return repo, out


@pytest.fixture(scope="session")
def ihatemoney_host(ihatemoney):
    """The ihatemoney machine as a testinfra host (root through sudo)."""
    return named_machine("ihatemoney", IHATEMONEY_ADDRESS)


@pytest.fixture(scope="session")
def ihatemoney_site(ihatemoney_host, tmp_path_factory):
    """https://192.168.56.41, its certificate trusted by every requests call."""
    return trust_site(ihatemoney_host, "ihatemoney", IHATEMONEY_ADDRESS, tmp_path_factory)
