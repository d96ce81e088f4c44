"""Engine test fixtures: a small application tree shaped like the guide's."""

from __future__ import annotations

import os

import pytest

from tests.unit.plugins.module_utils.builders import make_db, write


@pytest.fixture
def app(tmp_path):
    """A small app tree shaped like the guide's application directory."""
    root = tmp_path / "app"
    make_db(str(root / "data" / "reddit_sentiment.db"), rows=500)
    write(str(root / "config" / "production.env"), "DATABASE_PATH=data/reddit_sentiment.db\n")
    write(str(root / "config" / "logging.conf"), "[loggers]\nkeys=root\n")
    write(str(root / "config" / "monitoring.yml"), "interval: 30\n")
    write(str(root / "systemd" / "reddit-sentiment-pipeline.service"), "[Service]\nExecStart=/bin/true\n")
    write(str(root / "monitoring" / "alerting_rules.yml"), "groups: []\n")
    write(str(root / "scripts" / "run_pipeline.sh"), "#!/bin/sh\n", 0o755)
    write(str(root / "logs" / "pipeline.log"), "now\n")
    write(str(root / "logs" / "pipeline.log.1"), "rotated\n")
    write(str(root / "venv" / "bin" / "python"), "venv\n")
    write(str(root / "apps" / "collector" / "__pycache__" / "c.pyc"), "pyc\n")
    write(str(root / "output" / "sentiment_summary.csv"), "label,count\n")
    os.symlink("run_pipeline.sh", str(root / "scripts" / "current"))
    return root
