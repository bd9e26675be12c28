"""The control API (JSON over plain HTTP on its own loopback port): same operations as the in-process API."""

import json
import urllib.parse

from .clock import iso
from .server import Response


class _Bad(Exception):
    pass


def _need(body, *names):
    missing = [n for n in names if n not in body]
    if missing:
        raise _Bad("the request body needs %s" % ", ".join(missing))
    return [body[n] for n in names]


def _json(status, payload):
    return Response(status, json.dumps(payload, indent=None, sort_keys=True).encode(),
                    [("Content-Type", "application/json")])


class ControlApi:
    def __init__(self, sim):
        self.sim = sim

    def handle(self, req):
        try:
            body = json.loads(req.body.decode("utf-8")) if req.body.strip() else {}
        except (ValueError, UnicodeDecodeError):
            return _json(400, {"error": "the request body is not valid JSON"})
        if not isinstance(body, dict):
            return _json(400, {"error": "the request body must be a JSON object"})
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(req.query).items()}
        parts = [urllib.parse.unquote(p) for p in req.path.strip("/").split("/")]
        if parts[:1] != ["_sim"]:
            return _json(404, {"error": "control API lives under /_sim/"})
        route = parts[1:]
        try:
            return self._route(req.method, route, query, body)
        except _Bad as exc:
            return _json(400, {"error": str(exc)})
        except KeyError as exc:
            return _json(404, {"error": exc.args[0] if exc.args else "not found"})
        except (ValueError, TypeError) as exc:
            return _json(400, {"error": str(exc)})

    def _clock(self):
        c = self.sim.clock
        return {"now": iso(c.time()), "time": c.time(), "offset_seconds": c.offset, "frozen": c.frozen}

    def _route(self, method, route, q, body):  # noqa: C901  (a flat routing table reads best)
        sim = self.sim
        key = (method, "/".join(route[:1]))
        org = q.get("org") or body.get("org")
        if key == ("GET", "state"):
            return _json(200, sim.state())
        if key == ("POST", "reset"):
            sim.reset()
            return _json(200, {"reset": True})
        if key == ("GET", "clock"):
            return _json(200, self._clock())
        if key == ("POST", "clock"):
            adv = body.get("advance", body)
            kw = {k: adv[k] for k in ("days", "hours", "minutes", "seconds") if k in adv}
            if "freeze" in body:
                (sim.clock.freeze if body["freeze"] else sim.clock.unfreeze)()
            elif not kw:
                raise _Bad("POST /_sim/clock needs days/hours/minutes/seconds (e.g. {\"days\": 31}) or freeze")
            if kw:
                sim.clock.advance(**kw)
            return _json(200, self._clock())
        if key == ("GET", "variants"):
            return _json(200, sim.variants(org))
        if key == ("POST", "variants"):
            kw = {k: v for k, v in body.items() if k != "org"}
            return _json(200, sim.set_variants(org, **kw))
        if key == ("POST", "profile"):
            if not isinstance(body.get("profile"), dict):
                raise _Bad("POST /_sim/profile needs {\"profile\": {...the probe's profile...}, \"org\"?: ...}")
            return _json(200, {"applied": sim.load_profile(body["profile"], org), "variants": sim.variants(org)})
        if key == ("GET", "misdirected"):
            return _json(200, {"misdirected": sim.misdirected()})
        if key == ("GET", "faults"):
            return _json(200, {"faults": sim.faults()})
        if key == ("POST", "faults"):
            kw = dict(body)
            if "org" not in kw or "kind" not in kw:
                raise _Bad("POST /_sim/faults needs org (or \"*\") and kind")
            return _json(201, sim.add_fault(kw.pop("org"), kw.pop("kind"), **kw))
        if key == ("DELETE", "faults"):
            sim.clear_faults(org)
            return _json(200, {"faults": sim.faults()})
        if key == ("GET", "requests"):
            return _json(200, {"requests": sim.requests(org)})
        if key == ("DELETE", "requests"):
            sim.reset_log()
            return _json(200, {"requests": []})
        if key == ("GET", "counts"):
            return _json(200, {"counts": sim.counts(org), "write_count": sim.write_count(org)})
        if key == ("GET", "secrets"):
            return _json(200, {"secrets": sorted(sim.secrets())})
        if key == ("POST", "authenticates"):
            return _json(200, {"authenticates": sim.authenticates(*_need(body, "org", "key", "secret"))})
        if route[:1] == ["orgs"]:
            return self._orgs(method, route[1:], body)
        return _json(404, {"error": "no control endpoint %s /_sim/%s" % (method, "/".join(route))})

    def _orgs(self, method, route, body):
        sim = self.sim
        if not route:
            if method != "GET":
                raise _Bad("use GET /_sim/orgs")
            return _json(200, {"orgs": {n: o.instance_url for n, o in sim.orgs.items()}})
        name = route[0]
        sim.org(name)
        sub = route[1] if len(route) > 1 else ""
        if (method, sub) == ("GET", ""):
            return _json(200, sim.org_state(name))
        if (method, sub) == ("POST", "settings"):
            return _json(200, sim.configure_org(name, **body))
        if (method, sub) == ("POST", "refresh_tokens"):
            return _json(201, {"refresh_token": sim.issue_refresh_token(name, body.get("client_id"),
                                                                        body.get("username"))})
        if (method, sub) == ("POST", "access_tokens"):
            return _json(201, {"access_token": sim.issue_access_token(name, body.get("client_id"),
                                                                      body.get("username"))})
        if (method, sub) == ("DELETE", "tokens"):
            sim.revoke_tokens(name)
            return _json(200, {"revoked": True})
        if (method, sub) == ("POST", "certificates"):
            sim.register_certificate(name, *_need(body, "app", "consumer", "pem"))
            return _json(201, {"registered": True})
        if (method, sub) == ("POST", "staged"):
            cons = sim.org(name).app(_need(body, "app")[0]).consumer(body.get("consumer"))
            return _json(201, cons.set_staged(body.get("state", "Active"), body.get("age_days")))
        return _json(404, {"error": "no control endpoint %s /_sim/orgs/%s/%s" % (method, name, sub)})
