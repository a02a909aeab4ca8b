"""The todo application: a Flask app on PostgreSQL, served by gunicorn behind nginx."""

import os

from flask import Flask, abort, current_app, g, request
from flask_wtf.csrf import CSRFProtect, ValidationError, same_origin, validate_csrf
from werkzeug.middleware.proxy_fix import ProxyFix


class CSRFProtectAcrossKeyRotation(CSRFProtect):
    """Flask-WTF's CSRF check that also accepts a token signed with a previous secret key.

    After a secret-key rotation Flask reads existing session cookies with SECRET_KEY_FALLBACKS;
    Flask-WTF 1.3 signs and checks tokens with SECRET_KEY only, so a form loaded before the
    rotation would be refused. The Referer check is Flask-WTF's own (WTF_CSRF_SSL_STRICT).
    """

    def protect(self, apply_exemptions=False):
        """Validate the CSRF token with the current key, then with each fallback key."""
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return
        if request.method not in current_app.config["WTF_CSRF_METHODS"]:
            return
        if None in request.form:  # a multipart part without a name: Flask-WTF's token lookup would fail (500)
            abort(400, "A field of the form has no name.")
        token, keys = self._get_csrf_token(), [None, *current_app.config["SECRET_KEY_FALLBACKS"]]
        for n, key in enumerate(keys):
            try:
                validate_csrf(token, secret_key=key)
                break
            except ValidationError as error:
                if n == len(keys) - 1 or error.args[0] != "The CSRF token is invalid.":
                    self._error_response(error.args[0])  # raises CSRFError (400)
        if request.is_secure and current_app.config["WTF_CSRF_SSL_STRICT"]:
            if not request.referrer:
                self._error_response("The referrer header is missing.")
            if not same_origin(request.referrer, f"https://{request.host}/"):
                self._error_response("The referrer does not match the host.")
        g.csrf_valid = True


csrf = CSRFProtectAcrossKeyRotation()


def create_app(test_config=None):
    """Create and configure the app.

    Settings come from the environment the stack gives every app (``SECRET_KEY``,
    ``SECRET_KEY_FALLBACKS`` (comma-separated previous keys, still accepted for sessions and
    forms after a rotation), ``DATABASE_URL``, ``RELEASE_ID``, and supervisor's
    ``SUPERVISOR_PROCESS_NAME``, the instance), then this app's own ``TODO_*`` variables (any
    setting below, e.g. ``TODO_PAGE_SIZE``), or from ``test_config`` in tests. Raises
    RuntimeError without a SECRET_KEY or a DATABASE_URL, so a misconfigured instance never
    starts with a weak key.
    """
    # Static URLs name the release (/static/<release>/style.css): nginx serves each release's
    # own files, so pages from old and new instances never mix assets while a release rolls.
    release = (test_config or {}).get("RELEASE") or os.environ.get("RELEASE_ID", "dev")
    app = Flask(__name__, static_url_path=f"/static/{release}")
    app.config.from_mapping(
        SECRET_KEY=os.environ.get("SECRET_KEY"),
        SECRET_KEY_FALLBACKS=os.environ.get("SECRET_KEY_FALLBACKS", ""),
        DATABASE_URL=os.environ.get("DATABASE_URL"),
        RELEASE=release,
        INSTANCE=os.environ.get("SUPERVISOR_PROCESS_NAME") or os.uname().nodename,
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
        # Todos per page of the list (the deploy's page_size).
        PAGE_SIZE=50,
        # Seconds a shared cache (nginx's microcache) may keep GET /api/todos (the deploy's api_cache_seconds).
        API_CACHE_SECONDS=1,
        # Seconds a connection may be in use (DB_QUERY_TIMEOUT) or checked before it is lent
        # (DB_CHECK_TIMEOUT) before it is cut off: statement_timeout (DB_STATEMENT_TIMEOUT)
        # plus a second for the server's answer; a check needs no more than a connect (3 s).
        # Both are client-side deadlines for a hung server, far below gunicorn's 30 s timeout.
        DB_QUERY_TIMEOUT=6.0,
        DB_CHECK_TIMEOUT=3.0,
        # The server cancels a query running longer (PostgreSQL's statement_timeout).
        DB_STATEMENT_TIMEOUT="5s",
    )
    # Flask's own FLASK_* variables (the stack sets FLASK_MAX_CONTENT_LENGTH to nginx's limit), then
    # this app's TODO_*; loads=str: every value stays a string (json.loads would turn "1e5" into a float).
    app.config.from_prefixed_env()
    app.config.from_prefixed_env("TODO", loads=str)
    if test_config is not None:
        app.config.from_mapping(test_config)
    # From the environment strings (TODO_MAX_CONTENT_LENGTH, the deploy's max_body_bytes;
    # SECRET_KEY_FALLBACKS, the keys before the last rotation).
    app.config["MAX_CONTENT_LENGTH"] = int(app.config["MAX_CONTENT_LENGTH"])
    app.config["PAGE_SIZE"] = int(app.config["PAGE_SIZE"])
    app.config["API_CACHE_SECONDS"] = int(app.config["API_CACHE_SECONDS"])
    fallbacks = app.config.get("SECRET_KEY_FALLBACKS") or []
    if isinstance(fallbacks, str):
        fallbacks = [key for key in fallbacks.split(",") if key]
    app.config["SECRET_KEY_FALLBACKS"] = list(fallbacks)
    for key in ("SECRET_KEY", "DATABASE_URL"):
        if not app.config.get(key):
            raise RuntimeError(f"{key} is not set: export {key} (the stack sets it on the server)")

    # Exactly one proxy (nginx) sits in front of the app.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)
    from . import db, errors, metrics, todos

    metrics.init_app(app)
    csrf.init_app(app)

    db.init_app(app)
    errors.init_app(app)
    app.register_blueprint(todos.bp)
    return app
