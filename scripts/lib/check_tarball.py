"""Check a built collection tarball: no test-only or local files, no private key material.

usage: python scripts/lib/check_tarball.py TARBALL
"""
import re
import sys
import tarfile

# Top-level paths that must never ship (build_ignore in galaxy.yml keeps them out).
FORBIDDEN = ("tests", "eca_simulator", ".venv", ".tmp", ".git")
# A PEM private key block with a real body, not a mention of the header in code or docs.
KEY_BLOCK = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*(?:[A-Za-z0-9+/=]{40,}\s*){2,}")


def main(path):
    problems = []
    with tarfile.open(path) as tar:
        members = tar.getmembers()
        for m in members:
            name = m.name[2:] if m.name.startswith("./") else m.name
            if name.split("/", 1)[0] in FORBIDDEN:
                problems.append("ships a test-only or local path: %s" % name)
            elif m.isfile():
                data = tar.extractfile(m).read()
                if KEY_BLOCK.search(data):
                    problems.append("carries private key material: %s" % name)
    for p in problems:
        print("FAIL: %s" % p)
    if problems:
        return 1
    print("%s: %d entries; no %s; no private key" % (path.rsplit("/", 1)[-1], len(members), ", ".join(f + "/" for f in FORBIDDEN)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
