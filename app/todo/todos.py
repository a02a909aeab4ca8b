"""The todo list: list, add, toggle done, delete."""

import os

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from .db import connection

bp = Blueprint("todos", __name__)

#: Bounds of a todo's text, in characters (after stripping whitespace).
TEXT_MIN, TEXT_MAX = 1, 500


def _strip(value):
    """Strip surrounding whitespace from a submitted string."""
    return value.strip() if isinstance(value, str) else value


class TodoForm(FlaskForm):
    """The add-a-todo form (CSRF-protected by Flask-WTF)."""

    text = StringField(
        "Todo",
        filters=[_strip],
        validators=[DataRequired("Write something to do."), Length(TEXT_MIN, TEXT_MAX)],
    )


class ActionForm(FlaskForm):
    """An empty form carrying only the CSRF token (toggle, delete)."""


def _list_todos():
    """Return all todos, newest first."""
    with connection() as conn:
        return conn.execute("SELECT id, text, done, created FROM todo ORDER BY created DESC, id DESC").fetchall()


def _render_index(form, status=200):
    """Render the list page with ``form``."""
    return render_template("todos/index.html", todos=_list_todos(), form=form, action=ActionForm()), status


@bp.get("/")
def index():
    """Show the list and the add form."""
    return _render_index(TodoForm())


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
