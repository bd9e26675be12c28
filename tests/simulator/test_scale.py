"""The benchmark's figures: 500 orgs up in under 2 s; 50 concurrent clients without errors."""

import concurrent.futures
import socket
import threading
import time

from eca_simulator import Simulator, generate
from eca_simulator import testing as st


def test_500_orgs_up_in_under_2_seconds():
    """Construct + start 500 orgs (each listening). The 2 s bound is on the process's CPU time, which
    equals wall time on an idle machine (~0.3 s here) but not on a shared, overloaded CI box; wall time
    gets a generous bound (20 s)."""
    c0, t0 = time.process_time(), time.perf_counter()
    sim = Simulator(generate(500))
    sim.start()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    try:
        assert cpu < 2.0, "500 orgs cost %.2f s of CPU to come up" % cpu
        assert wall < 20.0, "500 orgs took %.2f s (wall) to come up" % wall
        ports = {o.port for o in sim.orgs.values()}
        assert len(ports) == 500
        for port in ports:  # every org really listens
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert st.token(sim, "org500") and st.token(sim, "org001")
        print("500 orgs up in %.3f s wall, %.3f s CPU" % (wall, cpu))
    finally:
        sim.stop()


def test_50_concurrent_clients_without_errors(sim_factory):
    sim = sim_factory(generate(100))
    barrier = threading.Barrier(50)

    def client(i):
        org = "org%03d" % (i + 1)
        c = st.RestClient(sim, org)
        barrier.wait(10)
        statuses = []
        for dummy in range(4):
            r = c.get("/apps/oauth/usage")
            statuses.append(r.status_code)
            app = [a for a in r.json()["apps"] if a["developerName"] == "Billing_Sync"][0]["identifier"]
            cons = c.get("/apps/oauth/credentials/" + app).json()["consumers"][0]
            statuses.append(c.get(cons["stagedCredentialsUrl"]).status_code)
        r = c.post(cons["stagedCredentialsUrl"])
        statuses.append(r.status_code)
        s1 = r.json()["stagedCredentials"][0]
        statuses.append(c.patch(s1["url"], json={"command": "rotate"}).status_code)
        statuses.append(c.delete(s1["url"]).status_code)
        # A second client on the same org at the same time (its own connection).
        statuses.append(st.RestClient(sim, org).get("/apps/oauth/usage").status_code)
        return org, s1, statuses

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        results = list(pool.map(client, range(50)))
    took = time.perf_counter() - t0
    for org, s1, statuses in results:
        assert statuses == [200] * 8 + [201, 200, 204, 200], (org, statuses)
        assert sim.org(org).app("Billing_Sync").consumer().main["key"] == s1["key"]
        assert sim.write_count(org) == 3
    assert len(sim.requests()) == 50 * 18
    assert took < 60
    print("50 concurrent clients, %d requests in %.2f s" % (len(sim.requests()), took))


def test_one_org_many_parallel_writers_stays_consistent(sim):
    """Concurrent POSTs on one consumer: exactly one wins, the rest get 400 (no torn state)."""
    clients = [st.RestClient(sim, "org01") for dummy in range(20)]
    path = clients[0].consumer_path("Billing_Sync") + "/staged"
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = sorted(pool.map(lambda c: c.post(path).status_code, clients))
    assert codes == [201] + [400] * 19
