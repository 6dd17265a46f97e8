# Copyright: netstack.tcp_tuning contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test --venv fetches get-pip from a host this network cannot reach. This script does the
same job from what is here: ensurepip (stdlib) puts pip into the fresh virtual environment, then
pip installs the exact packages ansible-test asked for from the package index.
"""

import subprocess
import sys

# Options only the real get-pip understands; pip install would reject them.
GET_PIP_ONLY_OPTIONS = {"--no-setuptools", "--no-wheel"}


def main() -> None:
    # A child process: ensurepip sets PIP_CONFIG_FILE=/dev/null in its own environment, which
    # would hide the machine's pip configuration (index, certificates) from the install below.
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade"], check=True, stdout=subprocess.DEVNULL)
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_OPTIONS]
    subprocess.run([sys.executable, "-m", "pip", "install", *args], check=True)


main()
