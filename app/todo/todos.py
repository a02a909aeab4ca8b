"""The todo list: list, add, toggle done, delete."""

import os
import re
from contextlib import suppress
from datetime import UTC, datetime

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length, ValidationError

from .db import connection

bp = Blueprint("todos", __name__)

#: Bounds of a todo's text, in characters (after stripping whitespace).
TEXT_MIN, TEXT_MAX = 1, 500


def _strip(value):
    """Strip surrounding whitespace from a submitted string."""
    return value.strip() if isinstance(value, str) else value


def _no_nul(form, field):
    """Refuse a NUL character, which PostgreSQL cannot store in text."""
    if field.data and "\x00" in field.data:
        raise ValidationError("A todo cannot contain a NUL character.")


class Form(FlaskForm):
    """A FlaskForm that reads the posted form's fields only.

    Flask-WTF would also read uploaded files and a JSON body, whose values need not be
    strings (a file, a number, a list): a field would hold one, or the form fail to build (500).
    """

    class Meta:
        def wrap_formdata(self, form, formdata):
            """The request's form fields when it was submitted (POST), else none."""
            return request.form if form.is_submitted() else None


class TodoForm(Form):
    """The add-a-todo form (CSRF-protected by Flask-WTF)."""

    text = StringField(
        "Todo",
        filters=[_strip],
        validators=[DataRequired("Write something to do."), Length(TEXT_MIN, TEXT_MAX), _no_nul],
    )


class ActionForm(Form):
    """An empty form carrying only the CSRF token (toggle, delete)."""


#: A page cursor: a todo's (created, id), the key the list is ordered by, e.g.
#: ``20261122T170000.123456Z.42`` (created in UTC to the microsecond, then the id).
CURSOR = re.compile(r"^(\d{8}T\d{6}\.\d{6})Z\.(\d{1,18})$")
COLUMNS = "SELECT id, text, done, created FROM todo"


def cursor(todo):
    """The cursor of a todo row (id, text, done, created)."""
    return f"{todo[3].astimezone(UTC):%Y%m%dT%H%M%S.%f}Z.{todo[0]}"


def _parse_cursor(value):
    """(created, id) of a cursor; 400 when it is not one, or names no real time (month 13)."""
    found = CURSOR.match(value)
    if found:
        with suppress(ValueError):
            return datetime.strptime(found[1], "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC), int(found[2])
    abort(400, "That page link is not valid: go back to the first page.")


def _page(before=None, after=None):
    """One page of todos, newest first, by keyset on (created, id) (index todo_created_id_idx):
    the first page, the page older than ``before`` or the page newer than ``after`` (cursors).
    Returns (todos, cursor of the newer page or "" for the first page or None, cursor of the
    older page or None). Its cost does not grow with the table: at most PAGE_SIZE + 1 rows."""
    size = current_app.config["PAGE_SIZE"]
    with connection() as conn:
        if after:
            rows = conn.execute(
                f"{COLUMNS} WHERE (created, id) > (%s, %s) ORDER BY created, id LIMIT %s", (*after, size + 1)
            ).fetchall()
            if len(rows) > size:  # else this reaches the newest todo: the first page instead, full
                todos = rows[:size][::-1]
                return todos, cursor(todos[0]), cursor(todos[-1])
            before = None
        if before:
            rows = conn.execute(
                f"{COLUMNS} WHERE (created, id) < (%s, %s) ORDER BY created DESC, id DESC LIMIT %s",
                (*before, size + 1),
            ).fetchall()
        else:
            rows = conn.execute(f"{COLUMNS} ORDER BY created DESC, id DESC LIMIT %s", (size + 1,)).fetchall()
    todos = rows[:size]
    newer = (cursor(todos[0]) if todos else "") if before else None
    return todos, newer, cursor(todos[-1]) if len(rows) > size else None


def _requested_page():
    """The page the query string names (``?before=CURSOR`` or ``?after=CURSOR``; else the first)."""
    before, after = request.args.get("before"), request.args.get("after")
    return _page(before=_parse_cursor(before) if before else None, after=_parse_cursor(after) if after else None)


def _render_index(form, status=200):
    """Render the list page (the page the query string names) with ``form``."""
    todos, newer, older = _requested_page()
    page = render_template("todos/index.html", todos=todos, newer=newer, older=older, form=form, action=ActionForm())
    return page, status


@bp.get("/")
def index():
    """Show a page of the list (``?before=CURSOR``: older, ``?after=CURSOR``: newer) and the add form."""
    return _render_index(TodoForm())


@bp.get("/api/todos")
def api_todos():
    """The same pages as JSON: {"todos": [{id, text, done, created}], "newer", "older"} (cursors
    for ?after= and ?before=; newer "" is the first page, null none). It reads no session and
    sets no cookie, so a shared cache may keep it: Cache-Control public, max-age API_CACHE_SECONDS
    (nginx's microcache, and browsers, keep it that long)."""
    todos, newer, older = _requested_page()
    response = jsonify(
        todos=[{"id": t[0], "text": t[1], "done": t[2], "created": t[3].isoformat()} for t in todos],
        newer=newer,
        older=older,
    )
    response.headers["Cache-Control"] = f"public, max-age={current_app.config['API_CACHE_SECONDS']}"
    return response


@bp.post("/todos")
def add():
    """Add a todo; 400 with the form's errors when the text is empty or too long."""
    form = TodoForm()
    if not form.validate_on_submit():
        return _render_index(form, 400)
    with connection() as conn:
        conn.execute("INSERT INTO todo (text) VALUES (%s)", (form.text.data,))
    flash("Added.")
    return redirect(url_for("todos.index"), 303)


def _update(sql, todo_id):
    """Run ``sql`` for one todo id; 404 when no such todo exists."""
    if not ActionForm().validate_on_submit():
        abort(400)
    with connection() as conn:
        if conn.execute(sql, (todo_id,)).rowcount == 0:
            abort(404, f"There is no todo {todo_id}.")
    return redirect(url_for("todos.index"), 303)


@bp.post("/todos/<int:todo_id>/toggle")
def toggle(todo_id):
    """Mark a todo done, or not done again."""
    return _update("UPDATE todo SET done = NOT done WHERE id = %s", todo_id)


@bp.post("/todos/<int:todo_id>/delete")
def delete(todo_id):
    """Delete a todo."""
    return _update("DELETE FROM todo WHERE id = %s", todo_id)


@bp.get("/version")
def version():
    """Say which release, instance and worker answered (for operators and tests)."""
    cfg = current_app.config
    return jsonify(release=cfg["RELEASE"], instance=cfg["INSTANCE"], pid=os.getpid())
