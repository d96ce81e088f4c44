#!/bin/sh
# Run one collector batch by hand, the way reddit-sentiment-pipeline.service does.
# Usage: scripts/run_pipeline.sh [extra collector.py options, e.g. --count 5 --seed 1]
set -eu
APP_ROOT="${APP_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$APP_ROOT"
if [ -f config/production.env ]; then
    set -a
    . ./config/production.env
    set +a
fi
PYTHON="${PYTHON:-python3}"
exec "$PYTHON" apps/collector/collector.py \
    --db "${DATABASE_PATH:-data/reddit_sentiment.db}" \
    --batch "${PIPELINE_BATCH_SIZE:-50}" \
    --output-dir "${OUTPUT_DIR:-output}" \
    --log-config "${LOG_CONFIG:-config/logging.conf}" \
    "$@"
