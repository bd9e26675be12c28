"""Put awx.awx and community.hashi_vault where the AWX tests of tests/e2e find them (SFDC_AWX_COLLECTIONS_PATH).

They are no dependency of this collection; the `ansible` community package on PyPI ships both. Its wheel is
downloaded once into a cache (pip, so the registry settings apply) and only the two collections are unpacked.

    python scripts/lib/awx_collections.py DEST      # prints DEST on success (DEST/ansible_collections/...)
"""

import os
import subprocess
import sys
import zipfile

PACKAGE = "ansible==12.3.0"   # awx.awx 24.6.1, community.hashi_vault 7.x
WANTED = ("ansible_collections/awx/awx/", "ansible_collections/community/hashi_vault/")


def main(dest):
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "sfdc-eca", "ansible-community")
    wheel = os.path.join(cache, "ansible-%s-py3-none-any.whl" % PACKAGE.split("==")[1])
    if not os.path.isfile(wheel):
        os.makedirs(cache, exist_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q", "--no-deps",
                               "-d", cache, PACKAGE], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        if proc.returncode != 0 or not os.path.isfile(wheel):
            sys.exit("cannot download %s (the wheel that ships awx.awx and community.hashi_vault):\n%s"
                     % (PACKAGE, proc.stdout[-2000:]))
    marker = os.path.join(dest, ".from-" + os.path.basename(wheel))
    if not os.path.isfile(marker):
        with zipfile.ZipFile(wheel) as whl:
            for name in whl.namelist():
                if name.startswith(WANTED):
                    whl.extract(name, dest)
        open(marker, "w").close()
    print(dest)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
