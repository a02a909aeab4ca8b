"""Settings that reach root shells and config files (deploy/settings.py): the push branch, the
server names and the backup schedules are checked on the workstation; a bad one is refused with a
message naming the setting and the value. Where git or systemd-analyze is installed here, it
confirms that what is accepted is valid and what its rules refuse is refused."""

import re
import shutil
import subprocess

import pytest

from deploy.settings import DEFAULTS, SettingError, check_calendar_event, check_deploy_branch, check_server_names

GIT, SYSTEMD_ANALYZE = shutil.which("git"), shutil.which("systemd-analyze")
needs_git = pytest.mark.skipif(not GIT, reason="git is not installed here")
needs_systemd_analyze = pytest.mark.skipif(not SYSTEMD_ANALYZE, reason="systemd-analyze is not installed here")

GOOD_BRANCHES = ["main", "production", "release/1.2", "feature/x-y_z", "v1.0", "lock", "a/-b", "UPPER"]
#: Branch names git-check-ref-format(1) --branch refuses.
BRANCHES_GIT_REFUSES = ["", "-x", "HEAD", "a..b", "a/.b", ".a", "a.lock", "a/b.lock/c", "a.", "a/", "/a", "a//b",
                        "a@{b", "a\\b", "a b", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\tb",
                        "main\nrm -rf /"]  # fmt: skip
#: Branch names git accepts but a shell command line or the push hook would not take as they are.
BRANCHES_FOR_A_SHELL = ["main;reboot", "main$(reboot)", "a`id`", 'a"b', "a'b", "a|b", "a&b", "a>b", "@", "a@b", "é"]

GOOD_SERVER_NAMES = [["192.168.56.10"], ["example.org", "www.example.org"], ["todo.test", "192.168.56.10"],
                     ["default"], ["*.example.org"], ["xn--bcher-kva.example"], ["a1.b-2.c3"], ["1.example.org"],
                     [f"{'a' * 63}.org"], [".".join(["a" * 49] * 5)]]  # fmt: skip
BAD_SERVER_NAMES = ["", "Example.org", "exa mple.org", "example.org;", "'example.org'", '"example.org"',
                    "example.org\nevil", "-example.org", "example-.org", "example..org", ".example.org",
                    "example.org.", "under_score.org", "www.example.*", "*.org", "*", "a.*.example.org",
                    "*example.org", f"{'a' * 64}.org", ".".join(["a" * 50] * 5), "192.168.56", "192.168.56.256",
                    "1.2.3.4.5", "2001:db8::1", "[2001:db8::1]", "bücher.example", "~^.*$", "$host", None,
                    80]  # fmt: skip

#: The calendar events the stack's defaults use and the common forms of systemd.time(7).
GOOD_SCHEDULES = ["Sun *-*-* 01:15:00", "Mon..Sat *-*-* 01:15:00", "daily", "weekly", "hourly", "Daily", "minutely",
                  "monthly", "quarterly", "semiannually", "yearly", "annually", "*-*-* 02:00:00", "Sun *-*-* 03:00",
                  "Mon..Fri 04:00", "*:0/15", "*:*:0/10", "Sat,Sun 03:00", "Mon-Fri 04:00", "monday 04:00", "Mon",
                  "Mon..Fri,Sun", "Sun 1:2", "01:15", "01:15 UTC", "*-*-* 01:15:00 UTC", "2030-01-01",
                  "12-25", "*-12-25 00:00", "*-*-01,15 00:00", "*-*-1..7 03:00", "Mon *-*-1..7 03:00",
                  "*-*~1", "*~1", "*-02~03", "*-*~28", "0,12:00", "01:15,45", "0/6:00", "*:0..30/5", "*-*-1/2 00:00",
                  "*-*-1..31/30 00:00", "0/23:00", "*:0/59", "2024..2030/2-01-01", "*-1/11-01"]  # fmt: skip
#: Values systemd's own parser refuses too.
SCHEDULES_SYSTEMD_REFUSES = ["", " daily", "daily 04:00", "*", "24:00", "23:60", "00:00:60", "*-13-01", "*-*-32",
                             "1969-01-01", "2200-01-01", "*:00/0", "*:0/60", "0/24:00", "*-*-1/31 00:00",
                             "*-*-5..4", "Fri..Mon 1:00", "Mon..Fri/2", "Mo 1:00", "Tues 1:00", "~1", "*-*~29",
                             "*-*-*/2", "1:5:", "+1:00", "daily\nExecStart=/bin/sh", "01:15:00\n[Service]",
                             "01:15; reboot", "$(reboot)", "`reboot`", "01:15 # x", "'daily'", "daily\x00"]  # fmt: skip
#: Values systemd takes that the stack refuses, to stay within a grammar it checks itself.
SCHEDULES_REFUSED_HERE = ["Mon  1:00", "Mon ", "1:2:3.5", "*-*-* 02:00:00 Europe/Berlin", "01:15 utc",
                          "*-*~1/27"]  # fmt: skip


def refused(check, name, value):
    """Assert ``check`` refuses ``value`` with a message naming the setting ``name`` and the value."""
    with pytest.raises(SettingError, match=rf"^inventory: {name}\b.* not {re.escape(repr(value))}$"):
        check(value)


def git_takes_branch(name):
    """Whether git itself takes ``name`` as a branch name."""
    return subprocess.run([GIT, "check-ref-format", "--branch", name], capture_output=True).returncode == 0


def systemd_takes_calendar(value):
    """Whether systemd itself parses ``value`` as a calendar event."""
    if "\x00" in value:
        return False  # no command line carries it
    return subprocess.run([SYSTEMD_ANALYZE, "calendar", value], capture_output=True).returncode == 0


@pytest.mark.parametrize("branch", GOOD_BRANCHES)
def test_deploy_branch_of_git_branch_name_characters_is_accepted(branch):
    assert check_deploy_branch(branch) == branch


@pytest.mark.parametrize("branch", [*BRANCHES_GIT_REFUSES, *BRANCHES_FOR_A_SHELL, None, 1])
def test_deploy_branch_git_or_a_shell_would_not_take_is_refused_naming_it(branch):
    refused(check_deploy_branch, "deploy_branch", branch)


@needs_git
@pytest.mark.parametrize("branch", GOOD_BRANCHES)
def test_deploy_branch_accepted_is_one_git_takes(branch):
    assert git_takes_branch(branch)


@needs_git
@pytest.mark.parametrize("branch", BRANCHES_GIT_REFUSES)
def test_deploy_branch_refused_by_git_rules_is_refused_by_git(branch):
    assert not git_takes_branch(branch)


@pytest.mark.parametrize("names", GOOD_SERVER_NAMES)
def test_server_names_of_dns_names_wildcards_and_ipv4_addresses_are_accepted(names):
    assert check_server_names(names) == names


@pytest.mark.parametrize("name", BAD_SERVER_NAMES)
def test_a_server_name_that_is_no_dns_name_or_ipv4_address_is_refused_naming_it(name):
    refused(lambda name: check_server_names(["example.org", name]), "server_names", name)


@pytest.mark.parametrize("names", ["example.org", [], ("example.org",)[1:], {"example.org": 1}])
def test_server_names_that_are_not_a_list_of_names_are_refused_naming_them(names):
    refused(check_server_names, "server_names", names)


@pytest.mark.parametrize("schedule", GOOD_SCHEDULES)
def test_a_backup_schedule_of_systemd_calendar_syntax_is_accepted(schedule):
    assert check_calendar_event("backup_full_schedule", schedule) == schedule


@pytest.mark.parametrize("schedule", [*SCHEDULES_SYSTEMD_REFUSES, *SCHEDULES_REFUSED_HERE, None, 2])
@pytest.mark.parametrize("name", ["backup_full_schedule", "backup_diff_schedule"])
def test_a_backup_schedule_outside_the_calendar_grammar_is_refused_naming_it(name, schedule):
    refused(lambda value: check_calendar_event(name, value), name, schedule)


@needs_systemd_analyze
@pytest.mark.parametrize("schedule", GOOD_SCHEDULES)
def test_a_backup_schedule_accepted_is_one_systemd_parses(schedule):
    assert systemd_takes_calendar(schedule)


@needs_systemd_analyze
@pytest.mark.parametrize("schedule", SCHEDULES_SYSTEMD_REFUSES)
def test_a_backup_schedule_systemd_refuses_is_refused_by_systemd(schedule):
    assert not systemd_takes_calendar(schedule)


def test_the_defaults_pass_their_checks():
    assert check_deploy_branch(DEFAULTS["deploy_branch"])
    for name in ("backup_full_schedule", "backup_diff_schedule"):
        assert check_calendar_event(name, DEFAULTS[name])
