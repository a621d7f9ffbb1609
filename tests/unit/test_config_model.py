"""The error contract of components' config models (components/config_model.py), through the
first section that is one (`addons`) and through parse_config."""

from __future__ import annotations

from typing import Any

import pytest

from components.addons_config import AddonsConfig
from components.config_model import SECRET, Findings, validate_section
from stacks.config import ConfigError, parse_config
from tests.support.mocks import existing_config


def _addons(raw: Any) -> tuple[AddonsConfig | None, list[str], list[str]]:
    found = Findings("")
    model = validate_section(AddonsConfig, raw, "addons", found)
    return model, [str(p) for p in found.problems], [str(w) for w in found.warnings]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"ingress": {"enabled": "yes"}}, "addons.ingress.enabled: must be true or false, not a string"),
        ({"ingress": {"enabled": 1}}, "addons.ingress.enabled: must be true or false, not a number"),
        ({"ingress": {"className": True}}, "addons.ingress.className: must be a string, not a boolean"),
        ({"ingress": {"className": SECRET}}, "addons.ingress.className: is not a secret setting; set it in plain text"),
        ({"ingress": {"enable": True}}, "addons.ingress.enable: unknown key (did you mean 'enabled'?)"),
        ({"metricServer": {}}, "addons.metricServer: unknown key (did you mean 'metricsServer'?)"),
        ({"ingress": "on"}, "addons.ingress: must be a mapping (key: value), not a string"),
        (["ingress"], "addons: must be a mapping (key: value), not a list"),
        ({"loadBalancer": {"addresses": "10.0.0.0/28"}}, "addons.loadBalancer.addresses: must be a list, not a string"),
        ({"mesh": {"values": ["a"]}}, "addons.mesh.values: must be a mapping, not a list"),
        ({"mesh": {"values": {1: "a"}}}, "addons.mesh.values: keys must be strings"),
    ],
)
def test_type_errors_are_the_projects_words(raw: Any, expected: str) -> None:
    _, problems, _ = _addons(raw)
    assert problems == [expected]


def test_strings_from_pulumi_config_set_are_read_as_booleans() -> None:
    model, problems, _ = _addons({"ingress": {"enabled": "false"}, "mesh": {"enabled": "True"}})
    assert problems == [] and model is not None
    assert model.ingress.enabled is False and model.mesh.enabled is True


def test_null_means_not_set() -> None:
    model, problems, _ = _addons({"ingress": {"className": None}, "storage": None})
    assert problems == [] and model is not None
    assert model.ingress.class_name == "traefik" and model.storage.default_class == "local-path"


def test_no_input_value_reaches_a_message() -> None:
    token = "s3cr3t-t0ken-value"
    raw = {
        "ingress": {"enabled": token, "className": {"token": token}, token: 1},
        "mesh": {"values": [token], "baseValues": {"x": token}, "clusterDomain": ["x", token]},
        "loadBalancer": {"enabled": True, "addresses": {"a": token}},
    }
    _, problems, _ = _addons(raw)
    assert len(problems) == 6
    # the unknown key is named (it is the user's key, not a value); no value is
    assert all(token not in p for p in problems if not p.startswith(f"addons.ingress.{token}:"))


def test_every_problem_at_once_and_cross_field_rules_still_run() -> None:
    raw = {
        "ingress": {"version": "latest", "className": "Bad_Name"},
        "loadBalancer": {"enabled": True},
        "mesh": {"enabled": "maybe"},
    }
    model, problems, _ = _addons(raw)
    assert model is not None  # the defaults stand in for the wrong values
    assert problems == [
        "addons.ingress.version: 'latest' is not a semantic version like '1.2.3'",
        "addons.ingress.className: 'Bad_Name' is not a valid IngressClass name: lowercase RFC 1123 DNS name "
        "(letters, digits, '-', '.')",
        "addons.mesh.enabled: must be true or false, not a string",
        "addons.loadBalancer.addresses: is required when the load balancer is enabled: CIDRs or ranges like "
        "'10.0.0.10-10.0.0.20'",
    ]


def test_a_wrong_address_is_not_also_reported_as_missing() -> None:
    _, problems, _ = _addons({"loadBalancer": {"enabled": True, "addresses": ["10.0.0.300/28"]}})
    assert problems == [
        "addons.loadBalancer.addresses[0]: '10.0.0.300/28' is not a CIDR ('10.0.0.0/28') or an address range "
        "('10.0.0.10-10.0.0.20')"
    ]


def test_rules_across_sections_report_beside_a_wrong_addons_field() -> None:
    config = existing_config()
    config["addons"] = {"ingress": {"enabled": "sometimes"}, "loadBalancer": {"enabled": True, "addresses": []}}
    config["apps"] = [{"name": "web", "image": "nginxinc/nginx-unprivileged:1.27", "mesh": True}]
    with pytest.raises(ConfigError) as err:
        parse_config(config)
    messages = [str(p) for p in err.value.problems]
    assert "addons.ingress.enabled: must be true or false, not a string" in messages
    assert "addons.loadBalancer.addresses: is empty; MetalLB needs at least one address range to hand out" in messages
    assert any(m.startswith("apps[0].mesh:") for m in messages), messages


def test_list_items_keep_their_index_when_an_earlier_one_cannot_be_read() -> None:
    from components.helm_config import HelmConfig

    found = Findings("")
    raw = {
        "releases": [
            {"name": "a", "repo": "https://charts.example.com", "chart": "a"},
            {"repo": "https://charts.example.com", "chart": "b"},  # no name: the item cannot be built
            {"name": "c", "repo": "https://charts.example.com", "chart": "c", "timeout": "0"},
        ]
    }
    model = validate_section(HelmConfig, raw, "helm", found, context={"environment": "dev"})
    assert [str(p) for p in found.problems] == [
        "helm.releases[1].name: is required",
        "helm.releases[2].timeout: must be at least 1, got 0",
    ]
    assert model is not None and [r.name for r in model.releases] == ["a", "c"]


def test_a_section_that_is_not_a_mapping_still_gets_its_rules_checked() -> None:
    """`cluster: x` is one mistake, and the cluster's own rules still say what a cluster needs."""
    config = existing_config()
    config["cluster"] = "kubespray"
    with pytest.raises(ConfigError) as err:
        parse_config(config)
    messages = [str(p) for p in err.value.problems]
    assert messages[0] == "cluster: must be a mapping (key: value), not a string"
    assert "cluster.nodes: at least one node is required in kubespray mode" in messages
    assert "cluster.controlHost.host: is required" in messages
