"""The "Salesforce org (OAuth)" credential type, checked the way AWX checks and uses it.

This module also holds the small AWX stand-in that test_awx_runner.py uses. Each piece mirrors one
AWX code path (awx/main, AWX 21-24):

* ``validate_credential_type``: ``fields.CredentialTypeInputField`` and ``CredentialTypeInjectorField``
  (JSON schema, reserved ``tower`` id, unique ids, type of defaults, env names allowed, every template
  renders with StrictUndefined against the declared fields).
* ``validate_credential_inputs``: ``fields.CredentialInputField`` (only declared fields, ``required``
  ones non-empty).
* ``inject_credential``: ``models.credential.CredentialType.inject_credential``. Only non-empty
  inputs enter the template namespace; file injectors are rendered with an
  ``ImmutableSandboxedEnvironment`` into ``mkstemp(dir=<private_data_dir>/env)`` files, mode 0600, and
  their names are published as ``tower.filename.<label>``; then every ``env`` template is rendered
  (an input left blank renders as ""), once with the real values for the job and once with secret
  fields masked for the job record (``safe_env``).
* ``build_safe_env``: ``models.credential.build_safe_env``, the redaction AWX applies to the
  environment it stores with the job (``job_env``).

One deliberate difference: AWX runs the job in an execution environment container where the private
data dir is mounted at ``/runner`` and so rewrites file paths with ``to_container_path``. These
tests run ansible-runner without a container, so the host path is kept (``container_root=None``).
"""
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

import jsonschema
import pytest
import yaml
from jinja2 import StrictUndefined, sandbox
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

ROOT = Path(__file__).resolve().parents[2]
CREDENTIAL_TYPE_FILE = ROOT / "awx" / "credential_type_salesforce_org.yml"

HIDDEN_PASSWORD = "**********"

# awx/main/constants.py ENV_BLOCKLIST: variables AWX itself sets for a job.
ENV_BLOCKLIST = frozenset((
    "VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
    "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES",
    "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG", "INVENTORY_HOSTVARS",
    "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH",
))

INPUTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "required": {"type": "array", "items": {"type": "string"}},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["string", "boolean"]},
                    "format": {"enum": ["ssh_private_key", "url"]},
                    "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}, "uniqueItems": True},
                    "id": {"type": "string", "pattern": "^[a-zA-Z_]+[a-zA-Z0-9_]*$"},
                    "label": {"type": "string"},
                    "help_text": {"type": "string"},
                    "multiline": {"type": "boolean"},
                    "secret": {"type": "boolean"},
                    "ask_at_runtime": {"type": "boolean"},
                    "default": {},
                },
                "additionalProperties": False,
                "required": ["id", "label"],
            },
        },
    },
}

INJECTORS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file": {
            "type": "object",
            "patternProperties": {r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$": {"type": "string"}},
            "additionalProperties": False,
        },
        "env": {
            "type": "object",
            "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string", "pattern": "^[\x00-\x7F]*$"}},
            "additionalProperties": False,
        },
        "extra_vars": {
            "type": "object",
            "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string"}},
            "additionalProperties": False,
        },
    },
}

CREDENTIAL_KINDS = ("ssh", "vault", "net", "scm", "cloud", "insights")  # what awx.awx.credential_type accepts


class AwxValidationError(ValueError):
    pass


def load_credential_type(path=CREDENTIAL_TYPE_FILE):
    return yaml.safe_load(Path(path).read_text())


def secret_fields(ctype):
    return [f["id"] for f in ctype["inputs"].get("fields", []) if f.get("secret", False) is True]


def validate_env_var_allowed(name):
    if name.startswith("ANSIBLE_"):
        raise AwxValidationError("Environment variable %s may affect Ansible configuration so its use is not allowed in credentials." % name)
    if name in ENV_BLOCKLIST:
        raise AwxValidationError("Environment variable %s is not allowed to be used in credentials." % name)


def validate_credential_type(ctype):
    """What AWX checks when the type is POSTed to /api/v2/credential_types/."""
    if ctype.get("kind") not in CREDENTIAL_KINDS:
        raise AwxValidationError("kind %r is not one of %s" % (ctype.get("kind"), CREDENTIAL_KINDS))
    inputs, injectors = ctype.get("inputs", {}), ctype.get("injectors", {})
    try:
        jsonschema.validate(inputs, INPUTS_SCHEMA)
        jsonschema.validate(injectors, INJECTORS_SCHEMA)
    except jsonschema.ValidationError as exc:
        raise AwxValidationError(exc.message) from None
    if "dependencies" in inputs:
        raise AwxValidationError("'dependencies' is not supported for custom credentials.")
    ids = set()
    for field in inputs.get("fields", []):
        if field["id"] == "tower":
            raise AwxValidationError('"tower" is a reserved field name')
        if field["id"] in ids:
            raise AwxValidationError("field IDs must be unique (%s)" % field["id"])
        ids.add(field["id"])
        ftype = field.get("type", "string")
        if "default" in field and not isinstance(field["default"], {"string": str, "boolean": bool}[ftype]):
            raise AwxValidationError("%s is not a %s" % (field["default"], ftype))
        for key in ("choices", "multiline", "format", "secret"):
            if key in field and ftype != "string":
                raise AwxValidationError("%s not allowed for %s type (%s)" % (key, ftype, field["id"]))
    for name in inputs.get("required", []):
        if name not in ids:
            raise AwxValidationError("required field %s is not defined" % name)

    class ExplodingNamespace:
        def __str__(self):
            raise UndefinedError("Must define unnamed file injector in order to reference `tower.filename`.")

    class TowerNamespace:
        def __init__(self):
            self.filename = ExplodingNamespace()

        def __str__(self):
            raise UndefinedError("Cannot directly reference reserved `tower` namespace container.")

    namespace = {name: "EXAMPLE" for name in ids}
    namespace["tower"] = TowerNamespace()
    template_names = [name for name in injectors.get("file", {}) if name.startswith("template")]
    if "template" in template_names:
        namespace["tower"].filename = "EXAMPLE_FILENAME"
        if len(template_names) > 1:
            raise AwxValidationError("Must use multi-file syntax when injecting multiple files")
    else:
        for name in template_names:
            setattr(namespace["tower"].filename, name.split(".")[1], "EXAMPLE_FILENAME")
    for type_, injector in injectors.items():
        if type_ == "env":
            for key in injector:
                validate_env_var_allowed(key)
        for key, tmpl in injector.items():
            try:
                sandbox.ImmutableSandboxedEnvironment(undefined=StrictUndefined).from_string(tmpl).render(namespace)
            except UndefinedError as exc:
                raise AwxValidationError("%s uses an undefined field (%s)" % (key, exc)) from None
            except SecurityError as exc:
                raise AwxValidationError("Encountered unsafe code execution: %s" % exc) from None
            except TemplateSyntaxError as exc:
                raise AwxValidationError("Syntax error rendering template for %s inside of %s (%s)" % (key, type_, exc)) from None


def validate_credential_inputs(ctype, inputs):
    """What AWX checks when a credential of this type is saved."""
    fields = {f["id"]: f for f in ctype["inputs"].get("fields", [])}
    for name, value in inputs.items():
        if name not in fields:
            raise AwxValidationError("Additional properties are not allowed (%r was unexpected)" % name)
        want = bool if fields[name].get("type", "string") == "boolean" else str
        if not isinstance(value, want):
            raise AwxValidationError("%r is not of type %s" % (value, want.__name__))
    missing = [name for name in ctype["inputs"].get("required", []) if not inputs.get(name)]
    if missing:
        raise AwxValidationError("; ".join("%s required for %s credential." % (name, ctype["name"]) for name in missing))


def inject_credential(ctype, inputs, env, safe_env, private_data_dir, container_root=None):
    """Mirror of CredentialType.inject_credential for a custom type (env and file injectors)."""
    injectors = ctype.get("injectors") or {}

    class TowerNamespace:
        pass

    tower = TowerNamespace()
    namespace, safe_namespace = {"tower": tower}, {"tower": tower}
    secrets = secret_fields(ctype)
    for name, value in inputs.items():
        if isinstance(value, bool):
            namespace[name] = safe_namespace[name] = value
            continue
        if name in secrets:
            safe_namespace[name] = HIDDEN_PASSWORD
        elif len(value):
            safe_namespace[name] = value
        if len(value):
            namespace[name] = value
    for field in ctype["inputs"].get("fields", []):
        if field.get("type") == "boolean" and field["id"] not in inputs:
            namespace[field["id"]] = safe_namespace[field["id"]] = False
        if field.get("format") == "ssh_private_key" and field["id"] in namespace and not namespace[field["id"]].endswith("\n"):
            namespace[field["id"]] += "\n"

    env_dir = os.path.join(str(private_data_dir), "env")
    os.makedirs(env_dir, mode=0o700, exist_ok=True)
    jinja = sandbox.ImmutableSandboxedEnvironment()
    for label, tmpl in injectors.get("file", {}).items():
        data = jinja.from_string(tmpl).render(**namespace)
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as f:
            f.write(data)
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if container_root:
            path = os.path.join(container_root, os.path.relpath(path, str(private_data_dir)))
        if "." not in label:
            tower.filename = path
        else:
            if not hasattr(tower, "filename"):
                tower.filename = TowerNamespace()
            setattr(tower.filename, label.split(".")[1], path)

    for name, tmpl in injectors.get("env", {}).items():
        try:
            validate_env_var_allowed(name)
        except AwxValidationError:
            continue  # AWX logs and skips it
        env[name] = jinja.from_string(tmpl).render(**namespace)
        safe_env[name] = jinja.from_string(tmpl).render(**safe_namespace)

    extra_vars = {name: jinja.from_string(tmpl).render(**namespace) for name, tmpl in injectors.get("extra_vars", {}).items()}
    return extra_vars


def build_safe_env(env):
    """Mirror of awx.main.models.credential.build_safe_env (what AWX stores as the job's env)."""
    hidden_re = re.compile(r"API|TOKEN|KEY|SECRET|PASS", re.I)
    urlpass_re = re.compile(r"^.*?://[^:]+:(.*?)@.*?$")
    safe = dict(env)
    for key, value in safe.items():
        if key == "AWS_ACCESS_KEY_ID":
            continue
        if key.startswith("ANSIBLE_") and not key.startswith("ANSIBLE_NET") and not key.startswith("ANSIBLE_GALAXY_SERVER"):
            continue
        if hidden_re.search(key):
            safe[key] = HIDDEN_PASSWORD
        elif isinstance(value, str) and urlpass_re.match(value):
            safe[key] = urlpass_re.sub(HIDDEN_PASSWORD, value)
    return safe


# ---------------------------------------------------------------------------------------------
# Tests of the credential type itself.
# ---------------------------------------------------------------------------------------------

FAKE = {
    "client_secret": "cs-7f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "access_token": "00Dxx0000000001!AQ4AQFakeSessionToken",
    "refresh_token": "5Aep861FakeRefreshToken",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIFAKEKEYBODY\n-----END PRIVATE KEY-----",
    "private_key_passphrase": "pass-phrase-1234",
}


@pytest.fixture
def ctype():
    return load_credential_type()


def _inject(ctype, inputs, tmp_path):
    validate_credential_inputs(ctype, inputs)
    env, safe_env = {}, {}
    (tmp_path / "env").mkdir(mode=0o700, exist_ok=True)
    inject_credential(ctype, inputs, env, safe_env, tmp_path)
    return env, safe_env


def test_awx_accepts_the_type(ctype):
    validate_credential_type(ctype)
    assert ctype["name"] == "Salesforce org (OAuth)"
    assert ctype["inputs"]["required"] == ["instance_url"]


def test_awx_accepts_the_vault_lookup_type(tmp_path):
    vtype = load_credential_type(ROOT / "awx" / "credential_type_hashi_vault_env.yml")
    validate_credential_type(vtype)
    env, safe_env = {}, {}
    validate_credential_inputs(vtype, {"url": "https://vault.example.com:8200", "token": "hvs.FAKEFAKEFAKE1234"})
    inject_credential(vtype, {"url": "https://vault.example.com:8200", "token": "hvs.FAKEFAKEFAKE1234"}, env, safe_env, tmp_path)
    assert env["VAULT_ADDR"] == "https://vault.example.com:8200" and env["VAULT_TOKEN"] == "hvs.FAKEFAKEFAKE1234"
    assert "hvs.FAKEFAKEFAKE1234" not in repr(build_safe_env(env)) and "hvs.FAKE" not in repr(safe_env)


def test_validator_rejects_what_awx_rejects(ctype):
    """The stand-in must be able to say no, or the test above proves nothing."""
    bad = load_credential_type()
    bad["injectors"]["env"]["SALESFORCE_X"] = "{{ no_such_field }}"
    with pytest.raises(AwxValidationError, match="undefined field"):
        validate_credential_type(bad)
    bad = load_credential_type()
    bad["injectors"]["env"]["ANSIBLE_CONFIG"] = "{{ instance_url }}"
    with pytest.raises(AwxValidationError, match="ANSIBLE_CONFIG"):
        validate_credential_type(bad)
    bad = load_credential_type()
    bad["injectors"]["env"]["SALESFORCE_PRIVATE_KEY_FILE"] = "{{ tower.filename.nope }}"
    with pytest.raises(AwxValidationError, match="undefined field"):
        validate_credential_type(bad)
    bad = load_credential_type()
    bad["inputs"]["fields"].append({"id": "x", "label": "X", "type": "number"})
    with pytest.raises(AwxValidationError):
        validate_credential_type(bad)
    with pytest.raises(AwxValidationError, match="instance_url required"):
        validate_credential_inputs(ctype, {"client_id": "k"})
    with pytest.raises(AwxValidationError, match="unexpected"):
        validate_credential_inputs(ctype, {"instance_url": "https://x", "password": "p"})


def test_every_secret_input_is_secret(ctype):
    assert set(secret_fields(ctype)) == {"client_secret", "private_key", "private_key_passphrase", "access_token", "refresh_token"}


def test_env_names_are_the_modules_fallbacks(ctype):
    """Each injected variable is SALESFORCE_<option> for a connection option with that env fallback."""
    for path in [str(p) for p in ROOT.parents[1:3]] + os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if path and path not in sys.path and (Path(path) / "ansible_collections" / "sfdc" / "eca").exists():
            sys.path.append(path)
    from ansible_collections.sfdc.eca.plugins.module_utils._common import connection_argument_spec

    spec = connection_argument_spec()
    fallbacks = {}
    for option, opts in spec.items():
        fb = opts.get("fallback")
        if fb:
            fallbacks.update({name: option for name in fb[1]})
    injected = set(ctype["injectors"]["env"])
    unknown = injected - set(fallbacks)
    assert not unknown, "injected variables no module reads: %s" % sorted(unknown)
    for name in injected:
        option = fallbacks[name]
        assert name == "SALESFORCE_" + option.upper()
        if spec[option].get("no_log"):
            field = name[len("SALESFORCE_"):].lower()
            assert field in secret_fields(ctype) or field == "private_key_file", name
    # Every way to sign in can be expressed with the credential.
    for option in ("instance_url", "access_token", "client_id", "client_secret", "username", "private_key_file",
                   "private_key_passphrase", "refresh_token", "token_url", "audience", "ca_path"):
        assert "SALESFORCE_" + option.upper() in injected, option


def test_client_credentials_injection(ctype, tmp_path):
    inputs = {"instance_url": "https://acme.my.salesforce.com", "client_id": "3MVGfakeKey", "client_secret": FAKE["client_secret"]}
    env, safe_env = _inject(ctype, inputs, tmp_path)
    assert env["SALESFORCE_INSTANCE_URL"] == inputs["instance_url"]
    assert env["SALESFORCE_CLIENT_ID"] == inputs["client_id"]
    assert env["SALESFORCE_CLIENT_SECRET"] == FAKE["client_secret"]
    # AWX sets every injector variable; blanks come through as "" (the modules treat "" as unset).
    for name in ("SALESFORCE_ACCESS_TOKEN", "SALESFORCE_USERNAME", "SALESFORCE_PRIVATE_KEY_FILE",
                 "SALESFORCE_PRIVATE_KEY_PASSPHRASE", "SALESFORCE_REFRESH_TOKEN", "SALESFORCE_TOKEN_URL",
                 "SALESFORCE_AUDIENCE", "SALESFORCE_CA_PATH"):
        assert env[name] == "", name
    assert safe_env["SALESFORCE_CLIENT_SECRET"] == HIDDEN_PASSWORD
    assert FAKE["client_secret"] not in repr(safe_env)


def test_jwt_injection_writes_the_key_file(ctype, tmp_path):
    inputs = {"instance_url": "https://acme.my.salesforce.com", "client_id": "3MVGfakeKey", "username": "int@acme.com",
              "private_key": FAKE["private_key"], "private_key_passphrase": FAKE["private_key_passphrase"],
              "audience": "https://test.salesforce.com"}
    env, safe_env = _inject(ctype, inputs, tmp_path)
    key_file = Path(env["SALESFORCE_PRIVATE_KEY_FILE"])
    assert key_file.parent == tmp_path / "env"
    assert key_file.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert env["SALESFORCE_PRIVATE_KEY_PASSPHRASE"] == FAKE["private_key_passphrase"]
    assert env["SALESFORCE_AUDIENCE"] == "https://test.salesforce.com"
    assert env["SALESFORCE_CA_PATH"] == ""
    # The job record shows the key file's path (not secret) but never the passphrase.
    assert safe_env["SALESFORCE_PRIVATE_KEY_PASSPHRASE"] == HIDDEN_PASSWORD
    assert safe_env["SALESFORCE_PRIVATE_KEY_FILE"] == str(key_file)


def test_container_paths_like_awx(ctype, tmp_path):
    inputs = {"instance_url": "https://x.my.salesforce.com", "client_id": "k", "username": "u", "private_key": FAKE["private_key"],
              "ca_bundle": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}
    env, safe_env = {}, {}
    inject_credential(ctype, inputs, env, safe_env, tmp_path, container_root="/runner")
    assert re.match(r"^/runner/env/tmp\w+$", env["SALESFORCE_PRIVATE_KEY_FILE"])
    assert re.match(r"^/runner/env/tmp\w+$", env["SALESFORCE_CA_PATH"])
    assert env["SALESFORCE_CA_PATH"] != env["SALESFORCE_PRIVATE_KEY_FILE"]


def test_awx_job_record_hides_every_secret_variable(ctype, tmp_path):
    """Whatever AWX stores as the job's environment (build_safe_env) carries no secret of this type."""
    inputs = {"instance_url": "https://acme.my.salesforce.com", "client_id": "3MVGfakeKey", "username": "int@acme.com"}
    inputs.update(FAKE)
    env = _inject(ctype, inputs, tmp_path)[0]
    stored = repr(build_safe_env(env))
    for name, value in FAKE.items():
        assert value not in stored, name
    assert "https://acme.my.salesforce.com" in stored  # not over-redacted: the URL stays readable
