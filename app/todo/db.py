"""PostgreSQL access: one psycopg_pool connection pool per worker process."""

import os
import socket
import threading
import time
from contextlib import contextmanager, suppress

import psycopg
from flask import current_app, jsonify
from psycopg_pool import ConnectionPool, PoolTimeout

#: Errors that mean "the database is unavailable" (answered with a 503).
UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)
#: Seconds between looks at whether the database refuses, while a request waits for a connection.
REFUSED_CHECK_INTERVAL = 0.25


@contextmanager
def cut_off_after(conn, seconds):
    """Cut ``conn`` off if the block still runs after ``seconds``.

    A hung server (SIGSTOP, a frozen VM, a lost network) never answers, and its
    ``statement_timeout`` cannot fire: libpq would wait forever and only gunicorn's
    worker timeout would end the request. On the deadline a timer thread shuts the
    connection's socket down; the waiting query then fails in psycopg's own code with
    OperationalError (the connection is closed, and the pool replaces it).
    """
    lock, done = threading.Lock(), False

    def cut():
        with lock, suppress(OSError, psycopg.Error):
            if not done:
                with socket.socket(fileno=os.dup(conn.fileno())) as sock:
                    sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield conn
    finally:
        with lock:
            done = True
        timer.cancel()


class _Connection(psycopg.Connection):
    """A psycopg connection that records whether this process's last attempt to connect failed."""

    refused = False

    @classmethod
    def connect(cls, *args, **kwargs):
        try:
            conn = super().connect(*args, **kwargs)
        except psycopg.OperationalError:
            _Connection.refused = True
            raise
        _Connection.refused = False
        return conn


def get_pool():
    """Return this process's pool, opening it on first use.

    The pool is created lazily and keyed by PID, so a pool is never shared
    across a fork (gunicorn forks workers; libpq sockets must not be shared).
    """
    ext = current_app.extensions
    pool = ext.get("todo_pool")
    if pool is None or ext.get("todo_pool_pid") != os.getpid():
        pool = ConnectionPool(
            current_app.config["DATABASE_URL"],
            min_size=1,
            max_size=int(current_app.config["DB_POOL_MAX_SIZE"]),
            timeout=float(current_app.config["DB_POOL_TIMEOUT"]),
            reconnect_timeout=float(current_app.config["DB_RECONNECT_TIMEOUT"]),
            # Test a connection before lending it: a restarted server leaves stale ones.
            check=_checker(float(current_app.config["DB_CHECK_TIMEOUT"])),
            open=False,
            name=f"todo-{os.getpid()}",
            connection_class=_Connection,
            # A query running longer is cancelled by the server (its error: a 503).
            kwargs={"options": f"-c statement_timeout={current_app.config['DB_STATEMENT_TIMEOUT']}"},
        )
        pool.open(wait=False)
        ext["todo_pool"], ext["todo_pool_pid"] = pool, os.getpid()
    return pool


def _checker(seconds):
    """psycopg_pool's check_connection, cut off after ``seconds`` (a hung server)."""

    def check(conn):
        with cut_off_after(conn, seconds):
            ConnectionPool.check_connection(conn)

    return check


@contextmanager
def connection():
    """A pooled connection in a transaction (committed on success), like ``pool.connection()``.

    Waits up to DB_POOL_TIMEOUT seconds while the database is merely slow (a first
    connection on a busy machine), but raises PoolTimeout within REFUSED_CHECK_INTERVAL
    once the pool's last attempt to connect failed: a database that refuses gets a fast
    503, not one that makes every request wait out the timeout. The block must end within
    DB_QUERY_TIMEOUT seconds, or the connection is cut off (``cut_off_after``).
    """
    pool = get_pool()
    deadline = time.monotonic() + float(current_app.config["DB_POOL_TIMEOUT"])
    while True:
        try:
            conn = pool.getconn(timeout=min(REFUSED_CHECK_INTERVAL, max(0.0, deadline - time.monotonic())))
            break
        except PoolTimeout:
            if _Connection.refused or time.monotonic() >= deadline:
                raise
    try:
        with cut_off_after(conn, float(current_app.config["DB_QUERY_TIMEOUT"])), conn:
            yield conn
    finally:
        pool.putconn(conn)


def close_pool():
    """Close this process's pool, if it has one."""
    pool = current_app.extensions.pop("todo_pool", None)
    if pool is not None:
        pool.close()


def healthz():
    """Answer 200 when the database answers ``SELECT 1``, else 503."""
    try:
        with connection() as conn:
            conn.execute("SELECT 1")
    except UNAVAILABLE as exc:
        return jsonify(status="unavailable", error=type(exc).__name__), 503
    return jsonify(status="ok")


def init_app(app):
    """Register the health check on the app."""
    app.add_url_rule("/healthz", "healthz", healthz)
