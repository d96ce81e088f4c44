#!/usr/bin/env bash
# promtool checks of the monitoring role's alerting rules (make promtool; the pytest suite runs the same checks in
# tests/unit/roles/test_alert_rules.py): `promtool check rules` on the shipped file, then every
# `promtool test rules` file here. promtool comes with Debian's prometheus package (tools/setup.sh installs it).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RULES="$HERE/../../collections/ansible_collections/devops/reddit_backup/roles/monitoring/files/reddit_backup.rules.yml"

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool is missing: run tools/setup.sh, or apt-get install -y --no-install-recommends prometheus" >&2
    exit 1
fi

promtool check rules "$RULES"
# Test files name the rules relative to themselves.
cd "$HERE"
promtool test rules ./*_test.yml
