"""k8s-platform: load the stack config, validate it, build the platform, export outputs."""

import dataclasses

import pulumi

from components.vocabulary import (
    SECRET_KUBECONFIG,
    SECRET_MYSQL_REPLICATION_PASSWORD,
    SECRET_MYSQL_ROOT_PASSWORD,
    SECRET_SSH_PRIVATE_KEY,
)
from stacks.config import ConfigError, parse_config
from stacks.files import PROJECT_ROOT, config_from_runtime, mysql_password_problems, placeholder_secrets
from stacks.program import ProgramSecrets, build

config = pulumi.Config()
secrets = ProgramSecrets(
    ssh_private_key=config.get_secret(SECRET_SSH_PRIVATE_KEY),
    kubeconfig=config.get_secret(SECRET_KUBECONFIG),
    mysql_root_password=config.get_secret(SECRET_MYSQL_ROOT_PASSWORD),
    mysql_replication_password=config.get_secret(SECRET_MYSQL_REPLICATION_PASSWORD),
)
placeholders = placeholder_secrets()
if placeholders and not pulumi.runtime.is_dry_run():
    # the example stacks preview as they are, but nothing is deployed with example secrets
    raise pulumi.RunError(
        "these secrets still hold the example placeholder; set your own first: "
        + ", ".join(f"pulumi config set --secret {key}" for key in placeholders)
    )
try:
    # every problem is reported before a single resource is registered
    spec = parse_config(config_from_runtime(), project_root=PROJECT_ROOT, source=f"stack {pulumi.get_stack()}")
    # passwords MySQL cannot take: refused now, not by a pod that never becomes ready
    if problems := mysql_password_problems(spec.mysql):
        raise ConfigError(problems, source=f"stack {pulumi.get_stack()}")
    for warning in spec.warnings:
        pulumi.log.warn(warning)
    # the secrets the settings name (apps' secretEnv, mysql.users): only known once the config is parsed
    secrets = dataclasses.replace(secrets, extra={key: config.require_secret(key) for key in spec.named_secret_keys})
    outputs = build(spec, secrets, PROJECT_ROOT)
except ConfigError as exc:
    # RunError: shown to the user as a message, without a Python traceback
    raise pulumi.RunError(str(exc)) from None

for key, value in outputs.items():
    pulumi.export(key, value)
