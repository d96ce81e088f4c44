"""Offline stand-in for get-pip.py, which ansible-test downloads from a host CI cannot reach.

ansible-test creates its sanity venvs without pip and runs `get_pip_<version>.py <pip args> <packages>
--no-setuptools --no-wheel` from ~/.ansible/test/cache/. This script takes that place: it installs the pip
wheel bundled with the interpreter (ensurepip), then lets that pip install what ansible-test asked for
(the pinned pip release, from PyPI), as get-pip.py would.
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}


def main() -> int:
    # ensurepip sets PIP_CONFIG_FILE=/dev/null in os.environ; the pip run after it needs the machine's pip
    # configuration (CA bundle, indexes), so it gets the environment as it was.
    environment = dict(os.environ)
    ensurepip.bootstrap(upgrade=True)
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    command = [sys.executable, "-m", "pip", "install", "--upgrade", "--force-reinstall", *pip_args]
    return subprocess.call(command, env=environment)


if __name__ == "__main__":
    sys.exit(main())
