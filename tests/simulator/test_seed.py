"""Seeds: files, generator, validation, the bundled demo seed."""

import json

import pytest

from eca_simulator import SeedError, Simulator, generate, load_seed
from eca_simulator import ids


def test_generate_with_template():
    seed = generate(3, {"name": "prod-{i}", "api_limit": 100,
                        "apps": [{"developer_name": "A", "consumers": [{"name": "x"}, {"name": "y"}]}]})
    sim = Simulator(seed)
    assert list(sim.orgs) == ["prod-1", "prod-2", "prod-3"]
    assert [c.name for c in sim.org("prod-2").app("A").consumers] == ["x", "y"]
    assert sim.org_state("prod-3")["settings"]["api_limit"] == 100
    assert list(Simulator(generate(2)).orgs) == ["org001", "org002"]
    with pytest.raises(SeedError):
        generate(0)


def test_yaml_and_json_files(tmp_path):
    y = tmp_path / "s.yml"
    y.write_text("orgs:\n  one:\n    apps:\n      - developer_name: App\n")
    j = tmp_path / "s.json"
    j.write_text(json.dumps({"orgs": [{"name": "two", "apps": [{"developer_name": "App"}]}]}))
    assert list(Simulator(str(y)).orgs) == ["one"]
    sim = Simulator(j)
    assert [c.name for c in sim.org("two").app("App").consumers] == ["App"]  # default consumer
    (tmp_path / "bad.yml").write_text("orgs: [\n")
    with pytest.raises(SeedError, match="not valid YAML"):
        load_seed(str(tmp_path / "bad.yml"))


def test_fixed_ids_keys_and_secrets():
    seed = {"orgs": [{"name": "o", "org_id": "00D000000000001",
                      "admin": {"client_id": "3MVG9admin", "client_secret": "S3CR3T", "username": "me@o.example.com"},
                      "apps": [{"developer_name": "A", "id": "0xI000000000001",
                                "consumers": [{"name": "c", "id": "888000000000001", "key": "3MVG9k", "secret": "s"}]}]}]}
    sim = Simulator(seed)
    o = sim.org("o")
    assert o.org_id == ids.to18("00D000000000001") and len(o.org_id) == 18
    assert o.admin == {"client_id": "3MVG9admin", "client_secret": "S3CR3T", "username": "me@o.example.com"}
    app = o.app("A")
    assert app.id == "0xI000000000001EAA" and o.app("0xI000000000001").id == app.id
    assert app.consumer().main == {"key": "3MVG9k", "secret": "s"}
    assert "S3CR3T" in sim.secrets() and "s" in sim.secrets() and "3MVG9k" not in sim.secrets()


def test_checksum():
    # Known pair from Salesforce documentation examples: 0015000000Gv7qJ -> 0015000000Gv7qJAAR
    assert ids.to18("0015000000Gv7qJ") == "0015000000Gv7qJAAR"
    assert ids.id15("0015000000Gv7qJAAR") == "0015000000Gv7qJ"
    assert ids.id15("0015000000Gv7qJAAA") is None
    new = ids.new_id(ids.APP)
    assert new.startswith("0xI") and len(new) == 18 and ids.id15(new) == new[:15]


@pytest.mark.parametrize("seed, message", [
    ({"orgs": []}, "non-empty 'orgs'"),
    ({"orgz": []}, "unknown key(s) orgz"),
    ({"orgs": [{"apps": []}]}, "needs a 'name'"),
    ({"orgs": [{"name": "a"}, {"name": "a"}]}, "appears twice"),
    ({"orgs": [{"name": "a", "colour": 1}]}, "unknown key(s) colour"),
    ({"orgs": [{"name": "a", "apps": [{"label": "x"}]}]}, "needs a 'developer_name'"),
    ({"orgs": [{"name": "a", "apps": [{"developer_name": "x"}, {"developer_name": "x"}]}]}, "used twice"),
    ({"orgs": [{"name": "a", "apps": [{"developer_name": "x", "consumers": [{"name": "c", "flows": ["password"]}]}]}]},
     "unknown flow(s)"),
    ({"orgs": [{"name": "a", "apps": [{"developer_name": "x", "consumers": [{"name": "c", "run_as": "z@z"}]}]}]},
     "run_as 'z@z' is not a user"),
    ({"orgs": [{"name": "a", "apps": [{"developer_name": "x", "consumers": [
        {"name": "c", "staged": {"state": "Pending"}}]}]}]}, "must be Active, Rotated or Expired"),
    ({"orgs": [{"name": "a", "apps": [{"developer_name": "x", "consumers": [
        {"name": "c", "staged": {"state": "Expired", "age_days": 3}}]}]}]}, "at least 30 days"),
    ({"orgs": [{"name": "a", "apps": [{"developer_name": "x", "consumers": [
        {"name": "c", "staged": {"state": "Rotated", "age_days": 30}}]}]}]}, "grace period"),
    ({"orgs": [{"name": "a", "apps": [{"developer_name": "x", "id": "001000000000001"}]}]}, "starting with 0xI"),
    ({"orgs": [{"name": "a", "variants": {"post_body": "xml"}}]}, "post_body='xml'"),
    ({"orgs": [{"name": "a", "apps": [{"developer_name": "x", "consumers": [{"name": "c", "jwt_cert": "nope"}]}]}]},
     "jwt_cert must be"),
])
def test_validation_names_the_bad_value(seed, message):
    with pytest.raises(ValueError) as exc:
        Simulator(seed)
    assert message in str(exc.value)


def test_demo_seed_situations():
    sim = Simulator("demo")
    assert list(sim.orgs) == ["acme", "globex", "initech", "umbrella", "hooli", "stark"]
    assert [a.developer_name for a in sim.org("globex").apps][1:] == [
        "Billing_Sync", "Data_Loader", "Marketing_Cloud_Sync", "Support_Portal"]
    assert len(sim.org("initech").app("Billing_Sync").consumers) == 3
    states = {name: sim.org(name).app("Billing_Sync").consumers[0].staged for name in sim.orgs}
    assert states["acme"] is None
    assert states["umbrella"]["state"] == "Rotated"
    assert states["hooli"]["state"] == "Expired"
    assert states["stark"]["state"] == "Active"
    assert sim.org("stark").admin_app.consumer().private_key_pem
