"""Error pages: a clear HTML page for every 4xx/5xx, never a traceback."""

from flask import render_template
from werkzeug.exceptions import HTTPException

from .db import UNAVAILABLE


def http_error(exc):
    """Render an HTTP error (400, 404, 405, 413, ...) with its own status."""
    return render_template("error.html", code=exc.code, name=exc.name, description=exc.description), exc.code


def database_unavailable(exc):
    """Answer 503 when PostgreSQL is down or the pool has no free connection."""
    return (
        render_template(
            "error.html",
            code=503,
            name="Service Unavailable",
            description="The database is unavailable. Please try again in a moment.",
        ),
        503,
        {"Retry-After": "5"},
    )


def init_app(app):
    """Register the error handlers on the app."""
    app.register_error_handler(HTTPException, http_error)
    for exc in UNAVAILABLE:
        app.register_error_handler(exc, database_unavailable)
