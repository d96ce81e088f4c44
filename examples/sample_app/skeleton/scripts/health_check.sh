#!/bin/sh
# Ask the health endpoint about the process and the database.
# Usage: scripts/health_check.sh [URL]   (default http://127.0.0.1:$HEALTH_PORT/health/database)
# Exit 0 healthy, 1 unhealthy (HTTP error status), 2 endpoint unreachable.
set -eu
APP_ROOT="${APP_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
if [ -f "$APP_ROOT/config/production.env" ]; then
    set -a
    . "$APP_ROOT/config/production.env"
    set +a
fi
URL="${1:-http://${HEALTH_HOST:-127.0.0.1}:${HEALTH_PORT:-8001}/health/database}"
exec "${PYTHON:-python3}" - "$URL" <<'PY'
import sys, urllib.error, urllib.request
url = sys.argv[1]
try:
    with urllib.request.urlopen(url, timeout=10) as resp:
        sys.stdout.write(resp.read().decode("utf-8", "replace"))
        sys.exit(0)
except urllib.error.HTTPError as exc:
    sys.stdout.write(exc.read().decode("utf-8", "replace"))
    sys.stderr.write("health check failed: HTTP %d from %s\n" % (exc.code, url))
    sys.exit(1)
except (urllib.error.URLError, OSError) as exc:
    sys.stderr.write("health endpoint unreachable: %s (%s)\n" % (url, exc))
    sys.exit(2)
PY
