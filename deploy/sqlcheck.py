"""Runs every migration and every query The Eye sends on current ClickHouse (chdb).

Reads `eye-admin sql` output (JSON) on stdin. The local server is ClickHouse 18.16; this
proves the same SQL also works, with the same results, on the release chdb embeds.
Exits non-zero on the first failure.
"""

import json
import sys
import tempfile

from chdb import session

SESSION = "sql-check-session"


def main() -> int:
    spec = json.load(sys.stdin)
    s = session.Session(tempfile.mkdtemp(prefix="eye-sqlcheck-"))
    version = s.query("SELECT version()", "CSV").bytes().decode().strip().strip('"')
    passed = 0
    failed = []

    def run(name, sql, fmt="JSONEachRow"):
        nonlocal passed
        try:
            out = s.query(sql, fmt).bytes().decode()
        except Exception as e:  # chdb raises its own error types
            failed.append(name)
            print(f"FAIL {name}: {e}\n  SQL: {sql}", file=sys.stderr)
            return None
        passed += 1
        print(f"ok   {name}")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def expect(name, cond, detail):
        nonlocal passed
        if cond:
            passed += 1
            print(f"ok   {name}")
        else:
            failed.append(name)
            print(f"FAIL {name}: {detail}", file=sys.stderr)

    run("create database", "CREATE DATABASE IF NOT EXISTS eye")
    run("use database", "USE eye")
    # Twice: migrations must be idempotent.
    for attempt in (1, 2):
        for m in spec["migrations"]:
            for i, stmt in enumerate(m["statements"]):
                run(f"migration {m['name']} statement {i} (pass {attempt})", stmt)

    queries = {q["name"]: q["sql"] for q in spec["queries"]}
    for name in ("ping", "create_migrations_table", "record_migration"):
        run(name, queries[name])
    applied = run("applied_migrations", queries["applied_migrations"]) or []
    expect("record_migration is read back", [r["version"] for r in applied] == [999], applied)

    # Three events of the session, posted out of order, one delivered twice; and another
    # session's event that must not appear.
    run(
        "insert sample rows",
        "INSERT INTO events (event_id, session_id, category, name, ts_us, received_at_us, data, value) VALUES "
        f"('00000000-0000-7000-8000-000000000003', '{SESSION}', 'c', 'n', 3000000, 1, '{{}}', NULL), "
        f"('00000000-0000-7000-8000-000000000001', '{SESSION}', 'c', 'n', 1000000, 1, '{{\"a\":1}}', 1.5), "
        f"('00000000-0000-7000-8000-000000000002', '{SESSION}', 'c', 'n', 2000000, 1, '{{}}', NULL), "
        "('00000000-0000-7000-8000-000000000009', 'other', 'c', 'n', 500000, 1, '{}', NULL)",
    )
    run(
        "insert a replayed copy",
        "INSERT INTO events (event_id, session_id, category, name, ts_us, received_at_us, data, value) VALUES "
        f"('00000000-0000-7000-8000-000000000001', '{SESSION}', 'c', 'n', 1000000, 1, '{{\"a\":1}}', 1.5)",
    )
    rows = run("session_events", queries["session_events"]) or []
    expect(
        "session_events: one row per event, in time order",
        [r["ts_us"] for r in rows] == [1000000, 2000000, 3000000]
        and len({r["event_id"] for r in rows}) == 3
        and all(r["session_id"] == SESSION for r in rows),
        rows,
    )
    counts = run("event_counts", queries["event_counts"]) or [{}]
    expect(
        "event_counts: distinct events",
        counts[0].get("distinct_events") == 4 and counts[0].get("stored_rows") in (4, 5),
        counts,
    )
    ts = run("materialized ts", "SELECT toString(ts) AS ts FROM events WHERE ts_us = 3000000 LIMIT 1") or []
    expect("ts is event time in seconds, UTC", ts == [{"ts": "1970-01-01 00:00:03"}], ts)

    for name in queries:
        if name not in ("ping", "create_migrations_table", "record_migration", "applied_migrations",
                        "session_events", "event_counts"):
            run(name, queries[name])

    print(f"sqlcheck on ClickHouse {version}: {passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
