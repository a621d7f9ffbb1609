"""`cluster.certificates.schedule` (kubespray's certificate-renewal timer, a systemd OnCalendar
expression) against `systemd-analyze calendar`, systemd's own parser (Debian's systemd package,
which `make system-deps` installs).

No Python library parses OnCalendar, so the program carries a port of systemd's parser
(`components.cluster_config.calendar_check`); this table holds it to the real one. Each row
is (expression, systemd accepts); the program agrees on every row except STRICTER's: a time
zone other than UTC (whether the nodes know it is up to their time zone database, not this
machine's) and `@<seconds>` (one instant, not a schedule), which it refuses on purpose.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components.cluster_config import calendar_check

pytestmark = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (Debian's systemd; make system-deps)"
)

CALENDAR: list[tuple[str, bool]] = [
    ('Mon *-*-1..7 03:00:00', True),
    ('Mon *-*-1,2,3,4,5,6,7 03:00:00', True),
    ('*-*-* 25:00:00', False),
    ('Mon..Fri 9:00', True),
    ('monthly', True),
    ('MONTHLY', True),
    ('Sun *-*-1..7 02:30', True),
    ('*-*-1..7 02:30 UTC', True),
    ('*-02-30', True),
    ('*-*~1', True),
    ('*-*~28', True),
    ('*-*~29', False),
    ('5..5', False),
    ('*-*-5..3', False),
    ('Mon-Fri', True),
    ('Mon,Tue, 03:00', True),
    ('Fri..Mon', False),
    ('2024-01-01', True),
    ('99-01-01', True),
    ('1969-01-01', False),
    ('2200-01-01', False),
    ('*-*-* *:*:*', True),
    ('*:0/15', True),
    ('*:00/15', True),
    ('03:00:00.5', True),
    ('Mon  03:00', True),
    ('Monday 03:00', True),
    ('mon 03:00', True),
    ('Mond 03:00', False),
    ('*-*-1/0', False),
    ('*-1/4-1', True),
    ('*-*-31/2', False),
    ('*-*-29/2', True),
    ('*-*-* 00:00:60', False),
    ('*-*-* 00:00:59.9', True),
    ('quarterly', True),
    ('semi-annually', True),
    ('anually', True),
    ('bi-annually', True),
    ('Sat,Sun *-*-* 01:00', True),
    ('*-*-1..7', True),
    ('1..7', False),
    ('Mon *-*-1..7 3:0:0', True),
    ('Mon 3', False),
    ('03:00 Mon', False),
    ('today', False),
    ('*-*-*T03:00', False),
    ('00:00:00 utc', True),
    ('UTC', False),
    ('*:*/15', False),
    ('*-*-* 03:00:00.1234567', True),
    ('Mon..Wed,Fri 03:00', True),
    ('Mon,,Tue', False),
    ('Mon, 03:00', True),
    ('Mon.. 03:00', False),
    ('*-*-1,,2', False),
    ('*-*-1, 03:00', False),
    ('*-*-01..07/2', True),
    ('*-*-1..7/0', False),
    ('2024-*-* 03:00:00', True),
    ('minutely UTC', True),
    ('*-*-1..31/31', True),
    ('*-*-1..30/29', True),
    ('*-*-* 00:00:60.0', False),
    ('*-*-* 24:00', False),
    ('*-*-* 23:59:59.999999', True),
    ('Mon *-*-* *:*', True),
    ('*-*-~1', False),
    ('*~1', True),
    ('*-*-*~1', False),
    ('2024-02~1', True),
    ('*-*~07..01', False),
    ('*-*~1..7', True),
    ('*-*-* 0:0', True),
    ('0:0:0:0', False),
    ('*-*-* 03:00:', False),
    ('*-*-* 03', False),
    ('Mon..Fri', True),
    ('2147483648-01-01', False),
    ('Mon *-*-1..7 03:00:00 UTC', True),
    ('Mon..Wed..Fri', False),
    ('Mon-Wed-Fri', False),
    ('Mon,Wed..Fri 03:00', True),
    ('Tue..Tue', True),
    ('Mon *-*-* 03:00:00/2', True),
    ('*-*-* 03:00/2', True),
    ('weekly', True),
    ('hourly', True),
    ('Mon Tue', False),
    ('Mon $(reboot)', False),
    ('sometimes', False),
    ('Mon *-*-1..7 03:00:00; reboot', False),
]
# refused by the program although systemd (here) takes them
STRICTER = ["*-*-* 3:00 CET", "*-*-1..7 02:30 Europe/Berlin", "Mon *-*-1..7 03:00 GMT", "@1700000000"]


def _systemd_accepts(expression: str) -> bool:
    res = subprocess.run(["systemd-analyze", "calendar", "--", expression], capture_output=True, text=True, timeout=30)
    return res.returncode == 0


def test_the_table_is_what_systemd_parses() -> None:
    wrong = [(e, ok) for e, ok in CALENDAR if _systemd_accepts(e) != ok]
    assert not wrong, f"systemd-analyze disagrees with the table (expression, table says accepted): {wrong}"


def test_the_program_agrees_with_systemd() -> None:
    assert len(CALENDAR) >= 80 and sum(ok for _, ok in CALENDAR) >= 40
    wrong = [(e, ok) for e, ok in CALENDAR if (calendar_check(e) is None) != ok]
    assert not wrong, f"the program disagrees with systemd on (expression, systemd accepts): {wrong}"


def test_time_zones_and_instants_are_refused_with_the_fix() -> None:
    for expression in STRICTER:
        message = calendar_check(expression)
        assert message is not None and ("UTC" in message or "instant" in message), (expression, message)
    assert calendar_check("*-*-1..7 02:30 UTC") is None


def test_a_refusal_names_the_form() -> None:
    message = calendar_check("*-*-* 25:00:00") or ""
    assert "OnCalendar" in message and "Mon *-*-1..7 03:00:00" in message
