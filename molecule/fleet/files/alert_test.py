#!/usr/bin/env python3
"""A `promtool test rules` file for BackupServerNoRecentBackup, built from the backup server's real metrics.

    alert_test.py RULES OUT FIRST_METRICS FIRST_TIME SECOND_METRICS SECOND_TIME EXPECTED_HOST [EXPECTED_HOST...]

FIRST_METRICS and SECOND_METRICS are reddit-backup-server.prom as the server's job wrote it at FIRST_TIME and
SECOND_TIME (Unix seconds): after a backup round of every app host, then after a round without the stopped one.
promtool's clock starts at 0; here 0 is one minute before FIRST_TIME, and node_exporter is scraped every minute.

The series are the job's values for each host (type full) as a scrape would have read them: nothing before the
first run, the first file's values until the second run, then the second file's. After the second run time is
advanced by a rule, not by waiting: a host whose newest full backup moved between the two real runs keeps its
schedule (a new full backup every 24 hours after its newest one), and a host whose newest backup did not move
stays where it is (its backups stopped arriving). The test then expects, a day after the second run, no alert,
and 25 hours plus the rule's `for` after the stopped host's last backup, the alert for EXPECTED_HOST and for no
other. It fails when the real metrics say otherwise (a host missing, a stopped host's value moving, a running
host's value not moving, a wrong label) or when the rule does.
"""

import json
import math
import re
import sys

METRIC = "reddit_backup_server_newest_backup_timestamp_seconds"
SAMPLE = re.compile(r'^%s\{(?P<labels>[^}]*)\} (?P<value>\S+)$' % METRIC)
DAY = 86400
STEP = 60
LABELS = {"instance": "backup1:9100", "job": "node"}
ALERT = "BackupServerNoRecentBackup"


def newest_full(text: str) -> dict:
    """{host: the newest full backup's timestamp} from one metrics file."""
    found = {}
    for line in text.splitlines():
        match = SAMPLE.match(line.strip())
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group("labels")))
        if labels.get("type") == "full":
            found[labels["host"]] = float(match.group("value"))
    return found


def humanize_duration(seconds: float) -> str:
    """Prometheus' humanizeDuration for a whole number of seconds of a day or more."""
    seconds = int(seconds)
    days, rest = divmod(seconds, DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return "%dd %dh %dm %ds" % (days, hours, minutes, secs)
    return "%dh %dm %ds" % (hours, minutes, secs)


def compress(values: list) -> str:
    """promtool's series notation: runs of one value as 'vxN' (N+1 samples), '_' for no sample."""
    parts, index = [], 0
    while index < len(values):
        end = index
        while end + 1 < len(values) and values[end + 1] == values[index]:
            end += 1
        word = "_" if values[index] is None else "%d" % values[index]
        parts.append(word if end == index else "%sx%d" % (word, end - index))
        index = end + 1
    return " ".join(parts)


def rule_annotations(rules_path: str) -> dict:
    import yaml  # the controller's venv has PyYAML (Ansible needs it)
    with open(rules_path, encoding="utf-8") as handle:
        rules = yaml.safe_load(handle)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == ALERT:
                return rule["annotations"]
    raise SystemExit("%s has no rule %s" % (rules_path, ALERT))


def render(template: str, host: str, value: float) -> str:
    return (template.replace("{{ $labels.instance }}", LABELS["instance"]).replace("{{ $labels.host }}", host)
            .replace("{{ $value | humanizeDuration }}", humanize_duration(value)))


def build(rules: str, first: dict, first_time: float, second: dict, second_time: float, expected: list) -> dict:
    base = math.floor(first_time / STEP) * STEP - STEP
    stopped_newest = min(second[host] for host in expected) if all(host in second for host in expected) else 0
    fire_at = math.ceil((stopped_newest + 25 * 3600 + 5 * 60 + 2 * STEP - base) / STEP)
    quiet_at = math.ceil((second_time + DAY - base) / STEP)
    steps = max(fire_at, quiet_at) + 1
    first_step = math.ceil((first_time - base) / STEP)
    second_step = math.ceil((second_time - base) / STEP)
    series = []
    for host in sorted(set(first) | set(second)):
        moved = host in first and host in second and second[host] > first[host]
        values = []
        for step in range(steps):
            moment = base + step * STEP
            if step < first_step:
                values.append(None)
            elif step < second_step:
                values.append(first.get(host))
            elif host not in second:
                values.append(None)
            elif moved:
                # a new full backup every 24 hours after its newest one, as its schedule says
                values.append(second[host] + DAY * math.floor((moment - second[host]) / DAY))
            else:
                values.append(second[host])
        labels = ",".join('%s="%s"' % pair for pair in sorted(dict(LABELS, host=host, type="full").items()))
        series.append({"series": "%s{%s}" % (METRIC, labels),
                       "values": compress([None if value is None else value - base for value in values])})
    annotations = rule_annotations(rules)
    fired = []
    for host in expected:
        value = base + fire_at * STEP - second.get(host, 0)
        fired.append({"exp_labels": dict(LABELS, severity="critical", host=host, type="full"),
                      "exp_annotations": {key: render(text, host, value) for key, text in annotations.items()}})
    return {"rule_files": [rules], "evaluation_interval": "1m", "tests": [{
        "name": "%s fires for the host whose backups stopped (%s), from the backup server's real metrics" % (
            ALERT, ", ".join(expected)),
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {"eval_time": "%dm" % quiet_at, "alertname": ALERT, "exp_alerts": []},
            {"eval_time": "%dm" % fire_at, "alertname": ALERT, "exp_alerts": fired},
        ]}]}


def main(argv: list) -> int:
    rules, out, first_path, first_time, second_path, second_time, *expected = argv
    with open(first_path, encoding="utf-8") as handle:
        first = newest_full(handle.read())
    with open(second_path, encoding="utf-8") as handle:
        second = newest_full(handle.read())
    test = build(rules, first, float(first_time), second, float(second_time), expected)
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(test, handle, indent=1)  # JSON is YAML: promtool reads it
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
