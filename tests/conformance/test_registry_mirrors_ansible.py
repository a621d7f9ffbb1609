"""cluster.registryMirrors through kubespray's own code and the program's playbook, with real
ansible (kubespray v2.31.0's pinned one), on this machine only (`-c local`, files under a temp
directory):

* each entry the program writes into containerd_registries_mirrors renders with kubespray's
  own containerd `hosts.toml.j2` into the hosts.toml containerd reads (parsed as TOML);
* registry-mirrors.yml copies a mirror's CA where hosts.toml names it, marks the registries it
  manages, and removes a marked registry that left the list (and nothing it did not mark).
"""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import yaml

from components.kubespray import REGISTRY_MIRRORS_PLAYBOOK
from components.kubespray_inventory import group_vars
from stacks.config import parse_config
from tests.support.mocks import PROJECT_ROOT, kubespray_config


def play(ansible_playbook: str, playbook: Path, extra: dict[str, object], cwd: Path) -> subprocess.CompletedProcess[str]:
    inventory = cwd / "hosts.yaml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {"k8s_cluster": {"hosts": {"node1": None}}}}}))
    extra = {**extra, "ansible_python_interpreter": "{{ ansible_playbook_python }}"}  # the venv's own python
    return subprocess.run([ansible_playbook, "-i", str(inventory), "-c", "local", str(playbook), "-e", json.dumps(extra)],
                          cwd=cwd, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_the_entries_render_with_kubesprays_hosts_toml_template(kubespray_src: Path, kubespray_ansible_playbook: str, tmp_path: Path) -> None:
    cfg = kubespray_config()
    del cfg["cluster"]["imageRepos"]
    cfg["cluster"]["registryMirrors"] = {"docker.io": {"url": "https://m.example.com/docker"},
                                         "quay.io": {"url": "https://q.example.com:5443"}}  # fmt: skip
    entries = group_vars(parse_config(cfg, project_root=PROJECT_ROOT).cluster)["containerd_registries_mirrors"]
    template = kubespray_src / "roles" / "container-engine" / "containerd" / "templates" / "hosts.toml.j2"
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "k8s_cluster", "gather_facts": False,
        "tasks": [{"ansible.builtin.template": {"src": str(template), "dest": f"{tmp_path}/{{{{ item.prefix }}}}.toml"},
                   "loop": "{{ entries }}"}],
    }]))  # fmt: skip
    cp = play(kubespray_ansible_playbook, playbook, {"entries": entries, "ansible_become": False}, tmp_path)
    assert cp.returncode == 0, cp.stdout[-3000:]
    docker = tomllib.loads((tmp_path / "docker.io.toml").read_text())
    assert docker == {"server": "https://registry-1.docker.io", "host": {"https://m.example.com/v2/docker": {
        "capabilities": ["pull", "resolve"], "skip_verify": False, "override_path": True}}}  # fmt: skip
    quay = tomllib.loads((tmp_path / "quay.io.toml").read_text())
    assert quay == {"server": "https://quay.io", "host": {"https://q.example.com:5443": {
        "capabilities": ["pull", "resolve"], "skip_verify": False, "override_path": False}}}  # fmt: skip


def test_the_playbook_places_cas_marks_and_removes_what_left(kubespray_ansible_playbook: str, tmp_path: Path) -> None:
    certs = tmp_path / "certs.d"
    (certs / "foreign.example.com").mkdir(parents=True)
    (certs / "foreign.example.com" / "hosts.toml").write_text("# not the program's\n")
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n")

    def run(registries: list[str], cas: list[dict[str, str]]) -> None:
        extra = {"certs_dir": str(certs), "ansible_become": False, "k8s_platform_registries": registries,
                 "k8s_platform_registry_cas": cas}  # fmt: skip
        cp = play(kubespray_ansible_playbook, REGISTRY_MIRRORS_PLAYBOOK, extra, tmp_path)
        assert cp.returncode == 0, cp.stdout[-3000:]

    dest = str(certs / "docker.io" / "k8s-platform-mirror-ca.crt")
    run(["docker.io", "quay.io"], [{"src": str(ca), "dest": dest}])
    assert Path(dest).read_text() == ca.read_text()
    assert (certs / "quay.io" / ".k8s-platform-mirror").is_file()
    (certs / "quay.io" / "hosts.toml").write_text("# kubespray's\n")
    # quay.io leaves the list: its directory goes, docker.io stays, the foreign one is untouched
    run(["docker.io"], [{"src": str(ca), "dest": dest}])
    assert not (certs / "quay.io").exists() and Path(dest).is_file()
    assert (certs / "foreign.example.com" / "hosts.toml").is_file()
    # the last mirror leaves (the step's delete): nothing of the program's is left
    run([], [])
    assert sorted(p.name for p in certs.iterdir()) == ["foreign.example.com"]
