"""Error pages: a clear HTML page for every 4xx/5xx, never a traceback; the JSON API's
errors (/api/...) say the same as JSON: {"code", "name", "description"}."""

from flask import jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .db import UNAVAILABLE


def error(code, name, description):
    """The error page, or for a URL of the JSON API the same as JSON."""
    if request.path.startswith("/api/"):
        return jsonify(code=code, name=name, description=description)
    return render_template("error.html", code=code, name=name, description=description)


def http_error(exc):
    """Answer an HTTP error (400, 404, 405, 413, ...) with its own status."""
    return error(exc.code, exc.name, exc.description), exc.code


def database_unavailable(exc):
    """Answer 503 when PostgreSQL is down or the pool has no free connection."""
    description = "The database is unavailable. Please try again in a moment."
    return error(503, "Service Unavailable", description), 503, {"Retry-After": "5"}


def init_app(app):
    """Register the error handlers on the app."""
    app.register_error_handler(HTTPException, http_error)
    for exc in UNAVAILABLE:
        app.register_error_handler(exc, database_unavailable)
