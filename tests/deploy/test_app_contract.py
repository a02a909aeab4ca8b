"""The app contract's parsers, without a machine: the Procfile (Heroku's format), a web: line that
must be one gunicorn command, requirements with and without hashes, the app settings, the
configuration's KEY=VALUE pairs and the environment launch.py gives every process. Each bad input
is refused with a message that names it."""

import pytest

from deploy.server import launch
from deploy.server.release import (
    StepFailed,
    parse_assignments,
    parse_procfile,
    requirements_without_hashes,
    web_argv,
)
from deploy.settings import DEFAULTS, SettingError, check_app


def test_a_procfile_gives_each_process_type_its_command():
    text = "# comment\nweb: gunicorn app:app --timeout 60\n\nworker: celery -A app worker\nrelease:flask db upgrade\n"
    assert parse_procfile(text) == {"web": "gunicorn app:app --timeout 60", "worker": "celery -A app worker",
                                    "release": "flask db upgrade"}  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [
    ("web gunicorn app:app", "line 1: 'web gunicorn app:app' is not 'TYPE: COMMAND'"),
    ("web:", "is not 'TYPE: COMMAND'"),
    ("web: a\nweb: b", "line 2: process type web is given twice"),
    ("we b: x", "is not 'TYPE: COMMAND'"),
])  # fmt: skip
def test_a_bad_procfile_line_is_named(text, message):
    with pytest.raises(StepFailed, match=message):
        parse_procfile(text)


@pytest.mark.parametrize("line", ["gunicorn app:app", "gunicorn --bind 0.0.0.0:$PORT 'app:create_app()'",
                                  "exec gunicorn -w 4 wsgi:application", "venv/bin/gunicorn app:app"])  # fmt: skip
def test_a_plain_gunicorn_web_line_is_taken(line):
    assert web_argv(line)[0].endswith("gunicorn")


@pytest.mark.parametrize("line", ["flask db upgrade; gunicorn app:app", "flask db upgrade && gunicorn app:app",
                                  "uwsgi --http :8000", "python app.py", "gunicorn app:app | tee log",
                                  "gunicorn $(cat args)", "gunicorn 'unclosed"])  # fmt: skip
def test_a_web_line_that_is_not_one_gunicorn_command_is_refused_with_what_to_do(line):
    with pytest.raises(StepFailed, match=r"not a plain gunicorn command|No closing quotation") as raised:
        web_argv(line)
    assert "wsgi_app" in str(raised.value) or "quotation" in str(raised.value)


def test_requirements_without_hashes_are_named():
    hashed = "flask==3.1.3 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via -r in\n"
    assert requirements_without_hashes(hashed) == []
    mixed = hashed + "requests==2.32.3  # no hash\n-r other.txt\n--index-url https://x\n\ngunicorn>=23\n"
    assert requirements_without_hashes(mixed) == ["requests==2.32.3", "gunicorn>=23"]


def settings(**changes):
    return {**DEFAULTS, **changes}


def test_the_app_settings_default_to_the_sample_app():
    assert check_app(settings()) == {}
    assert check_app(settings(metrics_path="")) == {}  # an app with no metrics of its own
    counts = check_app(settings(processes={"worker": 2, "clock": {"command": "python clock.py"}}))
    assert counts == {"worker": {"command": None, "count": 2}, "clock": {"command": "python clock.py", "count": 1}}


@pytest.mark.parametrize(("changes", "named"), [
    ({"shared_dirs": ["../etc"]}, "shared_dirs"),
    ({"shared_dirs": ["/var/lib/x"]}, "shared_dirs"),
    ({"shared_dirs": ["uploads/"]}, "shared_dirs"),
    ({"shared_dirs": ["a/./b"]}, "shared_dirs"),
    ({"shared_dirs": "uploads"}, "shared_dirs"),
    ({"shared_dirs": ["venv"]}, "shared_dirs"),
    ({"app_root": "../x"}, "app_root"),
    ({"static_folder": "/srv"}, "static_folder"),
    ({"health_path": "healthz"}, "health_path"),
    ({"health_path": "/a b"}, "health_path"),
    ({"metrics_path": "metrics"}, "metrics_path"),
    ({"static_url_path": "/static/../x"}, "static_url_path"),
    ({"app_environment": {"1ABC": "x"}}, "app_environment"),
    ({"app_environment": {"A-B": "x"}}, "app_environment"),
    ({"app_environment": {"A": "x\ny"}}, "app_environment"),
    ({"processes": {"web": 2}}, "processes"),
    ({"processes": {"wor ker": 1}}, "processes"),
    ({"processes": {"worker": -1}}, "processes"),
    ({"processes": {"worker": True}}, "processes"),
    ({"processes": {"worker": {"command": "a\nb"}}}, "processes"),
    ({"wsgi_app": ""}, "wsgi_app"),
    ({"release_command": "a\nb"}, "release_command"),
])  # fmt: skip
def test_a_bad_app_setting_is_refused_naming_it(changes, named):
    with pytest.raises(SettingError, match=named):
        check_app(settings(**changes))


def test_configuration_pairs_are_environment_variables():
    assert parse_assignments(["A=1", "B_2=x=y", "A=3", "EMPTY="]) == {"A": "3", "B_2": "x=y", "EMPTY": ""}


@pytest.mark.parametrize(("line", "message"), [
    ("NOEQUALS", "expected KEY=VALUE"),
    ("1A=x", "not a valid environment variable name"),
    ("A-B=x", "not a valid environment variable name"),
    ("=x", "not a valid environment variable name"),
    ("PATH=/tmp", "set by the stack"),
    ("A=x\ry", "carriage return"),
])  # fmt: skip
def test_a_bad_configuration_pair_is_refused(line, message):
    with pytest.raises(StepFailed, match=message):
        parse_assignments([line])


def test_launch_gives_libpq_its_variables_and_no_password_in_the_url():
    env = launch.database_environment({"app_name": "shop", "database_host": "10.0.0.5",
                                       "database_sslrootcert": "/etc/shop/db.crt"},
                                      {"DATABASE_USER": "shop_b", "DATABASE_PASSWORD": "s3cret"})  # fmt: skip
    assert env["PGPASSWORD"] == "s3cret" and "s3cret" not in env["DATABASE_URL"]
    assert env["DATABASE_URL"] == ("postgresql://shop_b@/shop?host=10.0.0.5&connect_timeout=3&sslmode=verify-full"
                                   "&sslrootcert=/etc/shop/db.crt")  # fmt: skip
    assert (env["PGHOST"], env["PGUSER"], env["PGDATABASE"], env["PGSSLMODE"]) == ("10.0.0.5", "shop_b", "shop",
                                                                                   "verify-full")  # fmt: skip
    local = launch.database_environment({"app_name": "shop"}, {})
    assert local["DATABASE_URL"] == "postgresql://shop@/shop?host=/var/run/postgresql&connect_timeout=3"
    assert "PGSSLMODE" not in local and "PGPASSWORD" not in local


def test_launch_reads_env_files_as_key_value_lines(tmp_path):
    path = tmp_path / "config.env"
    path.write_text("# a comment\nA=1\n  B = two words \nC=x=y\nnot a pair\n\n")
    assert launch.read_env_file(path) == {"A": "1", "B": "two words", "C": "x=y"}
    assert launch.read_env_file(tmp_path / "missing") == {}
