#!/usr/bin/env bash
# ansible-test sanity for the collection, offline apart from PyPI (make sanity).
#
# ansible-test must run from the collection root (ansible_collections/devops/reddit_backup); it lists the
# files to test with git. It gets its own venvs per test (--venv), pinned by ansible-test itself, so its
# pylint, yamllint and friends never clash with the tools in .venv.
#
# Its home (venv cache, pip bootstrap) lives in .ansible/ansible-test-home, not in ~.
# Extra arguments go to ansible-test: tools/sanity.sh --test pep8
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COLLECTION_DIR="$ROOT/collections/ansible_collections/devops/reddit_backup"
PYTHON_VERSION="${SANITY_PYTHON:-3.11}"
export HOME="$ROOT/.ansible/ansible-test-home"
# SANITY_VENV: the venv whose ansible-test runs (tools/matrix.sh passes an older ansible-core's).
export PATH="${SANITY_VENV:-$ROOT/.venv}/bin:$PATH"

# ansible-test bootstraps pip into its venvs with a get-pip.py it downloads: put our offline one in its cache.
pip_version="$(python - <<PY
from types import SimpleNamespace
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(SimpleNamespace(version="$PYTHON_VERSION"))["pip"])
PY
)"
mkdir -p "$HOME/.ansible/test/cache"
install -m 0644 "$ROOT/tools/ansible-test-get-pip.py" "$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"

cd "$COLLECTION_DIR"
exec ansible-test sanity --venv --python "$PYTHON_VERSION" --color no "$@"
