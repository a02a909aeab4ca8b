"""The todo application: a Flask app on PostgreSQL, served by gunicorn behind nginx."""

import os

from flask import Flask
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

csrf = CSRFProtect()


def create_app(test_config=None):
    """Create and configure the app.

    Settings come from ``TODO_*`` environment variables (``TODO_SECRET_KEY``,
    ``TODO_DATABASE_URL``, ``TODO_RELEASE``, ``TODO_INSTANCE``), or from
    ``test_config`` in tests. Raises RuntimeError without a SECRET_KEY or a
    DATABASE_URL, so a misconfigured instance never starts with a weak key.
    """
    # Static URLs name the release (/static/<release>/style.css): nginx serves each release's
    # own files, so pages from old and new instances never mix assets while a release rolls.
    release = (test_config or {}).get("RELEASE") or os.environ.get("TODO_RELEASE", "dev")
    app = Flask(__name__, static_url_path=f"/static/{release}")
    app.config.from_mapping(
        SECRET_KEY=None,
        DATABASE_URL=None,
        RELEASE=release,
        INSTANCE=os.uname().nodename,
        # Same limit as nginx's client_max_body_size (bytes): the deploy sets both from max_body_bytes.
        MAX_CONTENT_LENGTH=16 * 1024,
        # The session cookie (it carries the CSRF secret): HTTPS only, never readable by scripts,
        # not sent on cross-site subrequests or POSTs. nginx serves the app on HTTPS only.
        SESSION_COOKIE_SECURE=True,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PREFERRED_URL_SCHEME="https",
        # Seconds a request waits for a pooled connection before a 503, while the database is
        # slow to connect; once connecting fails, requests get their 503 at once (db.connection).
        DB_POOL_TIMEOUT=5.0,
        # Seconds the pool keeps retrying (backoff 1, 2, 4 s...) before giving up; the next
        # request then tries again at once. Short, so that after an outage no worker waits
        # out a long backoff: psycopg_pool's default of 300 s grows the gaps to 16-32 s.
        DB_RECONNECT_TIMEOUT=4.0,
        DB_POOL_MAX_SIZE=4,
        # Seconds a connection may be in use (DB_QUERY_TIMEOUT) or checked before it is lent
        # (DB_CHECK_TIMEOUT) before it is cut off: statement_timeout (5 s, set by gunicorn.conf.py)
        # plus a second for the server's answer; a check needs no more than a connect (3 s).
        # Both are client-side deadlines for a hung server, far below gunicorn's 30 s timeout.
        DB_QUERY_TIMEOUT=6.0,
        DB_CHECK_TIMEOUT=3.0,
    )
    # loads=str: every value stays a string (json.loads would turn "1e5" into a float).
    app.config.from_prefixed_env("TODO", loads=str)
    if test_config is not None:
        app.config.from_mapping(test_config)
    # From the environment a string (TODO_MAX_CONTENT_LENGTH, the deploy's max_body_bytes).
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_CONTENT_LENGTH"])
    for key in ("SECRET_KEY", "DATABASE_URL"):
        if not app.config.get(key):
            raise RuntimeError(f"{key} is not set: export TODO_{key} (gunicorn.conf.py sets it on the server)")

    # Exactly one proxy (nginx) sits in front of the app.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    csrf.init_app(app)

    from . import db, errors, todos

    db.init_app(app)
    errors.init_app(app)
    app.register_blueprint(todos.bp)
    return app
