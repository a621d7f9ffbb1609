"""pulumi-policy wiring of `guardrails.RULES`: one policy per rule, levels from the stack's environment.

The environment is the stack's own `k8s-platform:environment`, the value the
program validates. The Python language host starts a policy pack only after the
engine sent it the stack's configuration, and passes it in `PULUMI_CONFIG`
(pulumi-language-python `RunPlugin`); `python -m pulumi.policy` loads that into
`pulumi.Config` before this pack runs. So the enforcement levels are fixed when
the pack starts: `prod` rules are mandatory when the stack is prod, advisory
otherwise. When the key is missing or unreadable the prod tier applies (fail
closed) and the pack says so on stderr.

An operator can still override any level with Pulumi's own policy config:
`pulumi preview --policy-pack policy --policy-pack-config levels.json` with e.g.
`{"no-nodeport-services": "mandatory"}` or `{"all": "advisory"}`.
"""

from __future__ import annotations

import sys
from typing import Any

import guardrails as g
import pulumi
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

PACK_NAME = "k8s-platform-guardrails"


def stack_environment() -> tuple[str, str | None]:
    """(environment, note) from the stack config the engine passed to this pack."""
    try:
        value: Any = pulumi.Config("k8s-platform").get("environment")
    except Exception as exc:
        return (
            g.FALLBACK_ENVIRONMENT,
            f"cannot read {g.STACK_CONFIG_KEY} ({type(exc).__name__}); applying the prod tier",
        )
    return g.resolve_environment(value)


def level(rule: g.Rule, environment: str) -> EnforcementLevel:
    return EnforcementLevel.MANDATORY if g.enforcement(rule, environment) == "mandatory" else EnforcementLevel.ADVISORY


def _resource_validate(rule: g.Rule):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        view = g.manifest_view(args.resource_type, args.props)
        if view is None:
            return
        obj, is_patch = view
        for message in g.resource_violations(rule, obj, is_patch):
            report_violation(message, None)

    return validate


def _stack_validate(rule: g.Rule):
    assert rule.stack_check is not None

    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        objects, urns = [], []
        for resource in args.resources:
            view = g.manifest_view(resource.resource_type, resource.props)
            if view is None or view[1]:  # patches are partial objects
                continue
            objects.append(view[0])
            urns.append(resource.urn)
        for index, message in rule.stack_check(objects):  # type: ignore[misc]
            report_violation(message, urns[index])

    return validate


def build_policies(environment: str) -> list[Policy]:
    policies: list[Policy] = []
    for rule in g.RULES:
        if rule.is_stack:
            policies.append(
                StackValidationPolicy(
                    name=rule.name,
                    description=rule.description,
                    validate=_stack_validate(rule),
                    enforcement_level=level(rule, environment),
                )
            )
        else:
            policies.append(
                ResourceValidationPolicy(
                    name=rule.name,
                    description=rule.description,
                    validate=_resource_validate(rule),
                    enforcement_level=level(rule, environment),
                )
            )
    return policies


def announce(environment: str, note: str | None) -> None:
    if note:
        print(f"{PACK_NAME}: {note}", file=sys.stderr)
