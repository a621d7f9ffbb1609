"""Values the program checks by hand, against the parsers their consumers use.

Each table row is (value, accepted by the consumer). Three assertions per table:

- the program's own check agrees with the table, except the rows in the table's STRICTER
  map, which the program refuses on purpose (the reason is the map's value);
- the consumer's parser agrees with the table: `tests/conformance/refparse` (Go), built here
  at the module versions Kubernetes 1.34 builds with — robfig/cron's ParseStandard plus the
  API server's refusal of TZ (a CronJob's schedule), time.ParseDuration, apimachinery's
  ParseQuantity and label-key/value validation. Without `go` that part skips and the table
  stands as derived from those parsers' sources;
- for cron, croniter (which the program's check uses) parses every schedule the program accepts.

The real API server (the e2e tier) takes the committed stacks' schedules as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from croniter import croniter

from components.checks import parse_duration, parse_quantity
from components.cluster_config import cron_check
from components.pod_config import label_key_check, label_value_check

REFPARSE = Path(__file__).resolve().parent / "refparse"

# A CronJob's schedule, as robfig/cron v3.0.1's ParseStandard (parser.go) and the API server's
# validateScheduleFormat (pkg/apis/batch/validation) take it on create.
CRON: list[tuple[str, bool]] = [
    ("17 */6 * * *", True),
    ("0 3 * * *", True),
    ("*/15 * * * *", True),
    ("0 0 1,15 * *", True),
    ("0-59/15 * * * *", True),
    ("10/5 * * * *", True),  # 'N/step' is N-max/step
    ("0 0 * * 0", True),
    ("0 0 * * 6", True),
    ("0 0 * * mon-fri", True),
    ("0 0 * * MON-FRI", True),  # names are case-insensitive
    ("0 0 1 jan,jul *", True),
    ("0 0 ? * *", True),  # '?' is '*' in the day fields
    ("00 03 * * *", True),
    ("0  3 * * *", True),  # fields split on any run of spaces
    ("*/61 * * * *", True),  # a step past the range keeps the first value
    ("@yearly", True),
    ("@annually", True),
    ("@monthly", True),
    ("@weekly", True),
    ("@daily", True),
    ("@midnight", True),
    ("@hourly", True),
    ("@every 1h", True),
    ("0 0 31 2 *", True),  # parses; never fires
    ("? * * * *", True),
    ("1,,2 * * * *", True),  # empty list items are skipped
    ("+5 * * * *", True),  # strconv.Atoi takes a sign
    ("60 * * * *", False),
    ("* 24 * * *", False),
    ("0 0 0 * *", False),
    ("0 0 32 * *", False),
    ("0 0 * 0 *", False),
    ("0 0 * 13 *", False),
    ("0 0 * * 7", False),  # day of week is 0-6 (croniter takes 7)
    ("0 0 * * 0-7", False),
    ("5-1 * * * *", False),  # no wrap-around (croniter wraps)
    ("0 0 * * fri-mon", False),
    ("0 0 * * fri-sun", False),
    ("*/0 * * * *", False),
    ("1-60/5 * * * *", False),
    ("* * * * * *", False),  # no seconds field
    ("* * * *", False),
    ("0 0 L * *", False),
    ("0 0 1W * *", False),
    ("0 0 * * 1#2", False),
    ("0 0 * * 5L", False),
    ("H * * * *", False),
    ("0 0 * * sunday", False),
    ("0 jan * * *", False),
    ("-5 * * * *", False),
    ("@reboot", False),
    ("@DAILY", False),
    ("@every", False),
    ("every 6 hours", False),
    ("TZ=UTC 0 3 * * *", False),
    ("CRON_TZ=UTC 0 3 * * *", False),
    ("CRON_TZ=Europe/Berlin @daily", False),
]
STRICTER_CRON = {
    "@every 1h": "robfig/cron's own; no cron (croniter included) reads it: written as five fields instead",
    "0 0 31 2 *": "never fires: a backup schedule that never runs is a mistake",
    "? * * * *": "'?' outside the day fields is no cron's but robfig's",
    "1,,2 * * * *": "an empty list item is a typo",
    "+5 * * * *": "a signed minute is a typo",
}

# (value, accepted by apimachinery's resource.ParseQuantity)
QUANTITIES: list[tuple[str, bool]] = [
    ("1", True), ("0", True), ("250m", True), ("1.5", True), ("0.5Gi", True), (".5", True), ("1.", True),
    ("1Gi", True), ("1G", True), ("1k", True), ("1Ki", True), ("1Ei", True), ("1e3", True), ("1E3", True),
    ("1e-3", True), ("1E+3", True), ("1n", True), ("1u", True), ("12e10", True), ("1.5e3", True),
    ("100000000000000000000000", True), ("1e1000", True), ("-1", True), ("+1", True), ("m", True), ("Gi", True),
    (".", True), ("1K", False), ("1gi", False), ("1 Gi", False), ("1.5.5", False), ("1e", False), ("1ki", False),
    ("1KiB", False), ("1Gb", False), ("", False), ("1e+3m", False), ("0x10", False), ("1_000", False),
]  # fmt: skip
STRICTER_QUANTITIES = {
    "-1": "no request, limit or size is negative",
    "+1": "a sign is a typo here",
    "m": "a unit without a number is a typo",
    "Gi": "a unit without a number is a typo",
    ".": "no number",
}

# (value, accepted by Go's time.ParseDuration)
DURATIONS: list[tuple[str, bool]] = [
    ("1s", True), ("250ms", True), ("1m30s", True), ("1h", True), ("1.5h", True), (".5s", True), ("1.s", True),
    ("0s", True), ("1us", True), ("1µs", True), ("1μs", True), ("1ns", True), ("1m1m", True), ("1e3s", False),
    ("9223372036854775807ns", True), ("2562047h", True), ("0", True), ("-1s", True), ("+1s", True),
    ("9223372036854775808ns", False), ("3000000h", False), ("1d", False), ("1", False), ("1 s", False),
    ("1S", False), ("1h-1m", False), ("s", False), (".s", False), ("1..5s", False), ("", False),
]  # fmt: skip
STRICTER_DURATIONS = {
    "0": "durations here are positive",
    "-1s": "durations here are positive",
    "+1s": "a sign is a typo here",
}

_LONG_PREFIX = "a" * 250 + ".io"  # 253 characters
# (value, accepted by apimachinery's validation.IsQualifiedName)
LABEL_KEYS: list[tuple[str, bool]] = [
    ("tier", True), ("example.com/tier", True), ("app.kubernetes.io/name", True), ("a/b", True), ("A", True),
    ("a_b", True), ("a.b", True), ("x" * 63, True), (f"{_LONG_PREFIX}/x", True), ("1.2.3/x", True),
    ("x" * 64, False), (f"a{_LONG_PREFIX}/x", False), ("-a", False), ("a-", False), ("_a", False),
    ("example.com/", False), ("/a", False), ("a/b/c", False), ("Example.com/tier", False), ("a b", False),
    ("", False), ("a" * 64 + ".com/x", True),
]  # fmt: skip
# (value, accepted by validation.IsValidLabelValue)
LABEL_VALUES: list[tuple[str, bool]] = [
    ("", True), ("a", True), ("A", True), ("a_b", True), ("a.b", True), ("1", True), ("v1.2.3", True),
    ("x" * 63, True), ("x" * 64, False), ("-a", False), ("a-", False), ("_a", False), ("a/b", False),
    ("a b", False),
]  # fmt: skip

TABLES = {
    "cron": (CRON, STRICTER_CRON, lambda v: cron_check(v) is None),
    "quantity": (QUANTITIES, STRICTER_QUANTITIES, lambda v: parse_quantity(v) is not None),
    "duration": (DURATIONS, STRICTER_DURATIONS, lambda v: parse_duration(v) is not None),
    "labelkey": (LABEL_KEYS, {}, lambda v: label_key_check(v) is None),
    "labelval": (LABEL_VALUES, {}, lambda v: label_value_check(v) is None),
}


@pytest.mark.parametrize("kind", TABLES)
def test_the_program_agrees_with_the_consumer(kind: str) -> None:
    rows, stricter, program = TABLES[kind]
    assert len({v for v, _ in rows}) == len(rows), "a value is listed twice"
    assert set(stricter) <= {v for v, ok in rows if ok}, "a deliberate refusal must be of a value the consumer takes"
    wrong = [(v, ok) for v, ok in rows if program(v) != (ok and v not in stricter)]
    assert not wrong, f"{kind}: the program disagrees on (value, consumer accepts): {wrong}"


@pytest.fixture(scope="module")
def refparse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs go to build the reference parsers (the tables above still ran)")
    out = tmp_path_factory.mktemp("refparse") / "refparse"
    env = {**os.environ, "GOFLAGS": "-mod=readonly", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    # modules come from the Go module cache (`make engine` fills it) or the module proxy, checked against go.sum
    res = subprocess.run([go, "build", "-o", str(out), "."], cwd=REFPARSE, env=env, capture_output=True, text=True,
                         timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    return out


@pytest.mark.parametrize("kind", TABLES)
def test_the_table_is_what_the_consumer_parses(refparse: Path, kind: str) -> None:
    rows = TABLES[kind][0]
    assert all("\n" not in v and "\t" not in v for v, _ in rows)
    res = subprocess.run([str(refparse)], input="".join(f"{kind}\t{v}\n" for v, _ in rows), capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    answers = res.stdout.splitlines()
    assert len(answers) == len(rows), res.stdout
    wrong = [(v, ok, a) for (v, ok), a in zip(rows, answers, strict=True) if a.startswith("accepted") != ok]
    assert not wrong, f"{kind}: the consumer's parser disagrees with the table: {wrong}"


def test_croniter_reads_every_schedule_the_program_accepts() -> None:
    accepted = [v for v, _ in CRON if cron_check(v) is None]
    assert accepted and all(croniter.is_valid(v) for v in accepted), [v for v in accepted if not croniter.is_valid(v)]
    # where croniter alone would accept what the API server refuses, the dialect check is what refuses it
    assert {v for v, ok in CRON if not ok and croniter.is_valid(v)} >= {"0 0 * * 7", "5-1 * * * *", "0 0 L * *"}
