"""PostgreSQL access: one psycopg_pool connection pool per worker process."""

import os

import psycopg
from flask import current_app, jsonify
from psycopg_pool import ConnectionPool, PoolTimeout

#: Errors that mean "the database is unavailable" (answered with a 503).
UNAVAILABLE = (psycopg.OperationalError, PoolTimeout)


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
            check=ConnectionPool.check_connection,
            open=False,
            name=f"todo-{os.getpid()}",
        )
        pool.open(wait=False)
        ext["todo_pool"], ext["todo_pool_pid"] = pool, os.getpid()
    return pool


def close_pool():
    """Close this process's pool, if it has one."""
    pool = current_app.extensions.pop("todo_pool", None)
    if pool is not None:
        pool.close()


def healthz():
    """Answer 200 when the database answers ``SELECT 1``, else 503."""
    try:
        with get_pool().connection() as conn:
            conn.execute("SELECT 1")
    except UNAVAILABLE as exc:
        return jsonify(status="unavailable", error=type(exc).__name__), 503
    return jsonify(status="ok")


def init_app(app):
    """Register the health check on the app."""
    app.add_url_rule("/healthz", "healthz", healthz)
