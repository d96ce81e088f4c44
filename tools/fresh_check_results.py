#!/usr/bin/env python3
"""make fresh-check's wall times as a results file: build/fresh-check/summary.txt (each command) and
test-summary.txt (each step of `make test`) read into one JSON document, written where asked.

Usage: fresh_check_results.py SUMMARY TEST_SUMMARY OUTPUT --commit SHA --debian VERSION --skipped "STEPS"
"""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import datetime, timezone

# "name  result  12s", as tools/fresh-check.sh and the Makefile's test target print them.
_LINE = re.compile(r"^(?P<name>.+?)\s+(?P<result>ok|FAILED)\s+(?P<seconds>\d+)s$")


def read_times(path: str) -> list:
    """The (name, result, seconds) rows of a summary file, in order; none when it does not exist."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            match = _LINE.match(line.strip())
            if not match:
                raise SystemExit("%s: not a summary line: %r" % (path, line))
            rows.append({"name": match["name"], "result": match["result"], "seconds": int(match["seconds"])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary")
    parser.add_argument("test_summary")
    parser.add_argument("output")
    parser.add_argument("--commit", required=True)
    parser.add_argument("--debian", required=True)
    parser.add_argument("--skipped", default="")
    args = parser.parse_args()
    commands, steps = read_times(args.summary), read_times(args.test_summary)
    results = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "commit": args.commit,
        "root": "debootstrap --variant=minbase bookworm (Debian %s)" % args.debian,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": round(os.getloadavg()[0], 1)},
        "steps_left_out": args.skipped.split(),
        "passed": bool(commands) and all(row["result"] == "ok" for row in commands + steps),
        "commands": commands,
        "make_test_steps": steps,
    }
    with open(args.output + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
        handle.write("\n")
    os.replace(args.output + ".tmp", args.output)


if __name__ == "__main__":
    main()
