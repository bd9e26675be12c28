"""Salesforce-shaped identifiers, keys, secrets and tokens."""

import secrets

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

# Record-type prefixes the simulator uses.
ORG = "00D"
USER = "005"
APP = "0xI"
CONSUMER = "888"
STAGED = "0sC"  # unknown in the real API; any 3-char prefix is fine for clients


def _rand(n, alphabet=_ALNUM):
    # Modulo bias is irrelevant here; one urandom call keeps 500-org start-up fast.
    size = len(alphabet)
    return "".join(alphabet[b % size] for b in secrets.token_bytes(n))


def checksum_suffix(id15):
    """The 3-character case-safe suffix Salesforce appends to a 15-character id."""
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_CHECKSUM[bits])
    return "".join(out)


def to18(id15):
    if len(id15) == 18:
        return id15
    if len(id15) != 15:
        raise ValueError("a Salesforce id has 15 or 18 characters, got %d" % len(id15))
    return id15 + checksum_suffix(id15)


def new_id(prefix):
    """An 18-character id: prefix, a pod-ish '5g000', random tail, checksum."""
    id15 = prefix + "5g" + _rand(10)
    return to18(id15)


def id15(value):
    """The case-sensitive 15-character form of a 15- or 18-character id (None if malformed)."""
    if not isinstance(value, str):
        return None
    if len(value) == 18:
        if checksum_suffix(value[:15]) != value[15:]:
            return None
        return value[:15]
    if len(value) == 15:
        return value
    return None


def new_consumer_key():
    # Real keys start with 3MVG9 and are ~85 characters of [A-Za-z0-9._].
    return "3MVG9" + _rand(80, _ALNUM + "._")


def new_consumer_secret():
    return secrets.token_hex(32).upper()


def new_access_token(org_id):
    return org_id[:15] + "!" + "AQ" + _rand(94, _ALNUM + "._")


def new_refresh_token():
    return "5Aep861" + _rand(80, _ALNUM + "._")
