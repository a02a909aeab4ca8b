"""Fixtures for the app tests: a real PostgreSQL server started for the test run."""

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from yoyo import get_backend, read_migrations

from todo import create_app

APP_DIR = Path(__file__).resolve().parents[2] / "app"


def _pg_bin(name):
    """Path of a PostgreSQL server binary (Debian keeps them out of PATH)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        pytest.fail(f"{name} not found: install PostgreSQL (scripts/bootstrap does it)")
    return found[-1]


@pytest.fixture(scope="session")
def pg_server():
    """Start a throwaway PostgreSQL listening only on a unix socket; yield its socket dir.

    PostgreSQL refuses to run as root, so as root the server runs as ``postgres``.
    """
    tmp = tempfile.mkdtemp(prefix="todo-pg-")
    data, sock = os.path.join(tmp, "data"), os.path.join(tmp, "sock")
    os.mkdir(sock)
    prefix = []
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        for path in (tmp, sock):
            os.chown(path, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run(prefix + list(cmd), check=True, capture_output=True)  # noqa: E731
    run(_pg_bin("initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
    opts = f"-c listen_addresses='' -c unix_socket_directories={sock} -c fsync=off"
    run(_pg_bin("pg_ctl"), "-D", data, "-o", opts, "-w", "-l", os.path.join(tmp, "log"), "start")
    try:
        yield sock
    finally:
        run(_pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_server):
    """Create the ``todo`` database, apply the app's migrations, return its URL."""
    admin = f"postgresql://postgres@/postgres?host={pg_server}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("CREATE DATABASE todo")
    url = f"postgresql://postgres@/todo?host={pg_server}"
    backend = get_backend(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(APP_DIR / "migrations"))))
    return url


@pytest.fixture
def app(database_url):
    """An app on the test database, emptied before each test."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE todo RESTART IDENTITY")
    app = create_app({"TESTING": True, "SECRET_KEY": "test", "DATABASE_URL": database_url})
    yield app
    with app.app_context():
        from todo.db import close_pool

        close_pool()


@pytest.fixture
def client(app):
    """A browser-like test client: HTTPS (Flask's PREFERRED_URL_SCHEME, as behind nginx) and a
    same-origin Referer, which Flask-WTF requires on HTTPS POSTs (WTF_CSRF_SSL_STRICT)."""
    client = app.test_client()
    client.environ_base["HTTP_REFERER"] = "https://localhost/"
    return client


@pytest.fixture
def db(database_url):
    """A connection to the test database, to check what was (not) written."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn
