"""Policy pack `k8s-platform-guardrails`: `pulumi preview --policy-pack policy` (see guardrails.py)."""

from policies import PACK_NAME, announce, build_policies, stack_environment
from pulumi_policy import EnforcementLevel, PolicyPack

environment, note = stack_environment()
announce(environment, note)

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=build_policies(environment),
)
