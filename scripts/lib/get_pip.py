"""Offline stand-in for the get-pip.py script that `ansible-test --venv` downloads.

ansible-test bootstraps pip into each fresh, pip-less virtual environment by running
``~/.ansible/test/cache/get_pip_<version>.py`` as ``__main__`` with pip's install arguments
(``--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel``). The real script comes
from ci-files.testing.ansible.com, which this project's CI cannot reach. This one installs the
pip bundled with Python (ensurepip), then lets that pip install the requested version from the
configured package index. scripts/test.sh copies it into the cache before the sanity stage.
"""
# sfdc-eca-get-pip-standin (marker: scripts/test.sh only overwrites files carrying it)
import os
import subprocess
import sys

# Options of the real get-pip.py that pip itself does not know.
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}


def main(argv):
    args = [a for a in argv if a not in GET_PIP_ONLY]
    # Run in a child: ensurepip sets PIP_CONFIG_FILE=/dev/null in the environment of the process
    # that runs it, which would hide the machine's index and certificate settings from pip below.
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    env = dict(os.environ)
    if env.get("PIP_CONFIG_FILE") == os.devnull:
        del env["PIP_CONFIG_FILE"]
    if not any(not a.startswith("-") for a in args):
        return 0  # nothing but options: bundled pip is what was asked for
    return subprocess.call([sys.executable, "-m", "pip", "install"] + args, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
