"""python -m eca_simulator serve --seed FILE | --orgs N [--addressing auto|ports|addresses] [--port-base P] [--http]
                               [--state-file F] [--variant k=v ...] [--profile FILE]

Starts a local Salesforce ECA credential API simulator and prints, for each org, its instance URL
and the credentials of its admin External Client App. They are the simulator's own fake
credentials: printing them is the point, so you can aim the collection at it.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

from . import Simulator, generate
from .core import VARIANTS
from .profile import ProfileError
from .seed import SeedError


def _variant(text):
    org, dummy, kv = text.rpartition(":") if ":" in text.split("=", 1)[0] else ("", "", text)
    name, sep, value = kv.partition("=")
    if not sep or name not in VARIANTS or value not in VARIANTS[name]:
        allowed = "; ".join("%s=%s" % (k, "|".join(v)) for k, v in VARIANTS.items())
        raise argparse.ArgumentTypeError("bad --variant %r: use [ORG:]NAME=VALUE with one of %s" % (text, allowed))
    return org or None, name, value


def write_state(path, state):
    """Write atomically (readers poll for the file) and 0600 (it holds credentials)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def full_state(sim):
    state = sim.state()
    state["pid"] = os.getpid()
    state["addressing"] = sim.addressing
    for name, org in sim.orgs.items():
        jwt = []
        for app in org.apps:
            for cons in app.consumers:
                if cons.private_key_pem:
                    jwt.append({"app": app.developer_name, "consumer": cons.name, "client_id": cons.main["key"],
                                "private_key": cons.private_key_pem})
        if jwt:
            state["orgs"][name]["jwt"] = jwt
    return state


def serve(args):
    if args.orgs is not None:
        seed = generate(args.orgs)
    else:
        seed = args.seed
    variants = {name: value for org, name, value in args.variant if org is None}
    t0 = time.monotonic()
    try:
        sim = Simulator(seed, tls=not args.http, variants=variants, port_base=args.port_base,
                        control_port=args.control_port, addressing=args.addressing, profile=args.profile)
        for org, name, value in args.variant:
            if org is not None:
                sim.set_variants(org, **{name: value})
    except (SeedError, ProfileError, KeyError, ValueError) as exc:
        print("error: %s" % (exc.args[0] if exc.args else exc), file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        sim.start()
    except OSError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 1
    took = time.monotonic() - t0
    try:
        out = sys.stdout
        if args.state_file:
            # Before the listing: a full stdout pipe must not delay readiness.
            write_state(args.state_file, full_state(sim))
        transport = "https, CA %s" % sim.ca_path if sim.tls else "plain http"
        if sim.addressing == "addresses":
            urls = [o.instance_url for o in sim.orgs.values()]
            transport += "; one loopback address per org, %s .. %s" % (urls[0], urls[-1])
        out.write("ECA simulator: %d org(s) up in %.2f s (%s)\n" % (len(sim.orgs), took, transport))
        out.write("These are the simulator's own fake credentials (local use only).\n")
        for name, org in sim.orgs.items():
            admin = org.admin
            out.write("%s %s client_id=%s client_secret=%s username=%s\n"
                      % (name, org.instance_url, admin["client_id"], admin["client_secret"], admin["username"]))
        out.write("control URL: %s\n" % sim.control_url)
        if args.state_file:
            out.write("state file: %s\n" % args.state_file)
        out.flush()
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        if args.state_file:
            try:
                os.unlink(args.state_file)
            except OSError:
                pass
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m eca_simulator",
                                description="Local simulator of the Salesforce External Client App OAuth credential API.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve orgs until SIGTERM/SIGINT")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--seed", help="seed file (YAML or JSON), or 'demo' for the bundled demo seed")
    src.add_argument("--orgs", type=int, help="generate N orgs (org001..), one app Billing_Sync with consumer Billing")
    s.add_argument("--addressing", choices=("auto", "ports", "addresses"), default="auto",
                   help="ports: every org on 127.0.0.1, a port each; addresses: every org on a loopback address of "
                        "its own (127.1.0.1, 127.1.0.2, ...), one shared port (Linux); auto (default): addresses "
                        "above 1000 orgs where the system allows it, else ports")
    s.add_argument("--port-base", type=int, default=None,
                   help="ports: org i listens on P+i; addresses: the shared port (default: ephemeral)")
    s.add_argument("--control-port", type=int, default=0, help="control API port (default: ephemeral)")
    s.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS")
    s.add_argument("--state-file", help="write a JSON state file (URLs, admin credentials, ca_path, control_url) "
                                        "once every port listens; removed at exit")
    s.add_argument("--variant", type=_variant, action="append", default=[], metavar="[ORG:]NAME=VALUE",
                   help="behaviour switch, e.g. post_over_rotated=replace (repeatable; wins over --profile)")
    s.add_argument("--profile", help="behave like the org of a behaviour profile written by sfdc.eca.probe (YAML)")
    args = p.parse_args(argv)
    if args.orgs is not None and args.orgs < 1:
        p.error("--orgs must be at least 1")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
