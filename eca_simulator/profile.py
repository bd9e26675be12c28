"""Behaviour profiles: what `ansible-playbook sfdc.eca.probe` observed in a real org, as simulator switches.

A profile is YAML (or a dict) with a `variants` mapping `{switch: value}`; a value the probe could not observe is
`unknown` and leaves the switch as it is. Everything else in the profile (observations, versions) is for people.
"""

import os

import yaml

FORMAT = 1
UNKNOWN = "unknown"


class ProfileError(ValueError):
    pass


def load(profile):
    """The profile as a dict, from a dict or a YAML/JSON file path."""
    if isinstance(profile, dict):
        return profile
    path = os.fspath(profile)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as exc:
        raise ProfileError("cannot read profile %s: %s" % (path, exc.strerror)) from None
    except yaml.YAMLError as exc:
        raise ProfileError("profile %s is not valid YAML: %s" % (path, exc)) from None
    if not isinstance(data, dict):
        raise ProfileError("profile %s must hold a mapping with a 'variants' key" % path)
    return data


def variants(profile, validate):
    """{switch: value} of the switches the profile observed; `validate(name, value)` checks each one."""
    data = load(profile)
    version = data.get("sfdc_eca_profile", FORMAT)
    if version != FORMAT:
        raise ProfileError("profile format %r is not supported by this simulator (it reads format %d)"
                           % (version, FORMAT))
    found = data.get("variants")
    if not isinstance(found, dict):
        raise ProfileError("a profile needs a 'variants' mapping of switch: value (got %s)" % type(found).__name__)
    out = {}
    for name, value in found.items():
        if value is None or value == UNKNOWN:
            continue
        try:
            out[name] = validate(name, value)
        except ValueError as exc:
            raise ProfileError("profile: %s" % exc) from None
    return out
