#!/usr/bin/env bash
# The collection's documentation site (make docs): antsibull-docs writes the pages of the modules and of the
# roles (from their argument specs), the collection's guides (docs/*.md, read by MyST) and a page of the
# playbooks (from the comment each playbook opens with) join them, and Sphinx builds the HTML into build/docs/html.
# Any warning fails: antsibull-docs runs with --fail-on-error, Sphinx with -W (nitpicky), and
# `antsibull-docs lint-collection-docs --plugin-docs` checks the collection's docs first.
#
# Offline: intersphinx is off (no inventory downloads), so a reference to a page outside the
# collection must be a plain link.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COLLECTION_DIR="$ROOT/collections/ansible_collections/devops/reddit_backup"
SRC="$ROOT/build/docs-src"
OUT="$ROOT/build/docs"
export PATH="$ROOT/.venv/bin:$PATH"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg" ANSIBLE_HOME="${ANSIBLE_HOME:-$ROOT/.ansible}"
export ANSIBLE_COLLECTIONS_PATH="$ROOT/collections"

log() { printf '[docs] %s\n' "$*"; }

log "antsibull-docs lint-collection-docs --plugin-docs"
antsibull-docs lint-collection-docs --plugin-docs "$COLLECTION_DIR"

rm -rf "$SRC" "$OUT"
# antsibull-docs wants its folders writable by their owner only.
mkdir -p -m 0700 "$SRC"
antsibull-docs sphinx-init --use-current --squash-hierarchy --fail-on-error --dest-dir "$SRC" \
    --project devops.reddit_backup --copyright "the devops.reddit_backup authors" \
    --title "devops.reddit_backup" --html-short-title "devops.reddit_backup" devops.reddit_backup >/dev/null

# No network for inventories of other sites; MyST reads the guides, which are Markdown.
cat >>"$SRC/conf.py" <<'PY'

# tools/docs.sh: offline (no intersphinx inventories), and the collection's Markdown guides through MyST.
intersphinx_mapping = {}
extensions = [name for name in extensions if name != 'sphinx.ext.intersphinx'] + ['myst_parser']
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
myst_heading_anchors = 3
PY

log "antsibull-docs collection (modules, roles)"
mkdir -p -m 0700 "$SRC/rst"
antsibull-docs --config-file "$SRC/antsibull-docs.cfg" collection --cleanup everything --fail-on-error \
    --use-current --squash-hierarchy --dest-dir "$SRC/rst" devops.reddit_backup

log "the guides and the playbooks page"
python3 "$ROOT/tools/docs_pages.py" "$COLLECTION_DIR" "$SRC/rst"

log "sphinx-build -W (build/docs/html)"
sphinx-build -q -b html -W --keep-going -c "$SRC" "$SRC/rst" "$OUT/html"
log "built $OUT/html/index.html"
