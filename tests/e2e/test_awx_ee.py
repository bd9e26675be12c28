"""Execution environment definitions: ansible-builder turns them into a build context that
installs this collection and its Python requirements.

No container engine here, so the image is not built. What is checked instead is everything up to
`podman build`: `ansible-builder create` on the shipped definitions, the galaxy stage's install
command replayed on the context's own files, and the builder stage's `introspect` on the result.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def tool(name):
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name)


def run(cmd, cwd=None, env=None):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, "%s failed (rc=%s)\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(map(str, cmd)), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def galaxy_version():
    return yaml.safe_load((ROOT / "galaxy.yml").read_text())["version"]


@pytest.fixture(scope="module")
def ee_tree(tmp_path_factory):
    """The EE definition with the files it names, laid out as in the repo, and a fresh tarball."""
    tree = tmp_path_factory.mktemp("ee")
    shutil.copy(ROOT / "execution-environment.yml", tree)
    shutil.copy(ROOT / "requirements.txt", tree)
    (tree / "dist").mkdir()
    env = dict(os.environ, ANSIBLE_NOCOLOR="1")
    run([tool("ansible-galaxy"), "collection", "build", "--force", "--output-path", str(tree / "dist"), str(ROOT)], env=env)
    return tree


@pytest.fixture(scope="module")
def context(ee_tree):
    ctx = ee_tree / "context"
    run([tool("ansible-builder"), "create", "-f", str(ee_tree / "execution-environment.yml"), "-c", str(ctx),
         "--output-filename", "Containerfile", "-v", "2"])
    return ctx


def test_definition_is_v3_and_in_step_with_galaxy_yml():
    ee = yaml.safe_load((ROOT / "execution-environment.yml").read_text())
    assert ee["version"] == 3
    assert ee["images"]["base_image"]["name"]
    deps = ee["dependencies"]
    assert "ansible-core" in deps["ansible_core"]["package_pip"]
    assert "ansible-runner" in deps["ansible_runner"]["package_pip"]
    tarball = "sfdc-eca-%s.tar.gz" % galaxy_version()
    names = [c["name"] for c in deps["galaxy"]["collections"]]
    assert "collections/" + tarball in names, "execution-environment.yml must name the tarball of galaxy.yml's version %s" % tarball
    assert [f["src"] for f in ee["additional_build_files"]] == ["dist/" + tarball]


def test_create_names_collection_and_requests(context):
    build = context / "_build"
    tarball = "sfdc-eca-%s.tar.gz" % galaxy_version()

    reqs = yaml.safe_load((build / "requirements.yml").read_text())
    assert {"name": "collections/" + tarball, "type": "file"} in reqs["collections"]
    # The galaxy stage copies _build to /build and installs from there: the tarball must be inside.
    shipped = build / "collections" / tarball
    assert shipped.is_file()
    with tarfile.open(shipped) as tf:
        manifest = json.load(tf.extractfile("MANIFEST.json"))["collection_info"]
        members = set(tf.getnames())
    assert (manifest["namespace"], manifest["name"]) == ("sfdc", "eca")
    assert {"meta/execution-environment.yml", "requirements.txt", "meta/runtime.yml"} <= members

    pip = (build / "requirements.txt").read_text()
    assert re.search(r"^requests\b", pip, re.M), pip

    containerfile = (context / "Containerfile").read_text()
    assert "COPY _build /build" in containerfile
    assert "ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml" in containerfile
    assert "introspect.py introspect --user-pip=requirements.txt" in containerfile
    assert "ansible-core>=2.16" in containerfile and "ansible-runner" in containerfile


def test_context_installs_and_introspects(context, tmp_path):
    """Replay the galaxy stage (offline: only the file entries) and the builder stage's introspect."""
    build = context / "_build"
    reqs = yaml.safe_load((build / "requirements.yml").read_text())
    local = {"collections": [c for c in reqs["collections"] if c.get("type") == "file"]}
    assert local["collections"], "no local collection in the build context"
    (tmp_path / "local.yml").write_text(yaml.safe_dump(local))
    colls = tmp_path / "usr_share_ansible_collections"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_GALAXY_DISABLE_GPG_VERIFY="1")
    # --force: a collection of the same version found on ANSIBLE_COLLECTIONS_PATH must not satisfy it.
    run([tool("ansible-galaxy"), "collection", "install", "--offline", "--force", "-r", str(tmp_path / "local.yml"),
         "--collections-path", str(colls)], cwd=build, env=env)
    assert (colls / "ansible_collections/sfdc/eca/meta/execution-environment.yml").is_file()

    out = tmp_path / "pip.txt"
    cmd = [tool("ansible-builder"), "introspect", str(colls), "--write-pip", str(out),
           "--user-pip", str(build / "requirements.txt")]
    if (build / "exclude-requirements.txt").exists():
        cmd += ["--exclude-pip-reqs", str(build / "exclude-requirements.txt")]
    proc = run(cmd)
    assert "from collection sfdc.eca" in proc.stdout, proc.stdout
    lines = [line.strip() for line in out.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert any(re.match(r"^requests\b", line) for line in lines), lines


def test_introspect_without_the_collection_finds_nothing(tmp_path):
    """Control for the test above: the requests line comes from the collection, not from the tool."""
    (tmp_path / "ansible_collections").mkdir()
    out = tmp_path / "pip.txt"
    proc = run([tool("ansible-builder"), "introspect", str(tmp_path), "--write-pip", str(out)])
    assert "requests" not in proc.stdout
    assert not out.exists() or "requests" not in out.read_text()


def test_meta_execution_environment_points_at_requirements():
    meta = yaml.safe_load((ROOT / "meta/execution-environment.yml").read_text())
    deps = meta["dependencies"]
    assert deps["python"] == "requirements.txt"
    assert re.search(r"^requests\b", (ROOT / deps["python"]).read_text(), re.M)
    if "system" in deps:
        assert (ROOT / deps["system"]).is_file()


def test_galaxy_variant_creates(tmp_path):
    """The definition for building from Galaxy / Automation Hub instead of the source tree."""
    ctx = tmp_path / "context"
    run([tool("ansible-builder"), "create", "-f", str(ROOT / "awx/execution-environment-galaxy.yml"), "-c", str(ctx),
         "--output-filename", "Containerfile"])
    reqs = yaml.safe_load((ctx / "_build/requirements.yml").read_text())
    assert any(c["name"] == "sfdc.eca" for c in reqs["collections"])
    assert "ansible-galaxy collection install" in (ctx / "Containerfile").read_text()
