"""The words every part of k8s-platform shares, defined once: who manages an object, the
well-known labels the components set and select on, and the shapes of Kubernetes names.

Components and the stack config (stacks/) both import this module; it imports nothing of
the project's.
"""

from __future__ import annotations

import re
from typing import Literal

# --------------------------------------------------------------------------- args: what the component receives

Environment = Literal["dev", "staging", "prod"]


# Secret config keys (namespace `k8s-platform:`), always set with `pulumi config set --secret`.
SECRET_SSH_PRIVATE_KEY = "sshPrivateKey"


SECRET_KUBECONFIG = "kubeconfig"


SECRET_MYSQL_ROOT_PASSWORD = "mysqlRootPassword"


SECRET_MYSQL_REPLICATION_PASSWORD = "mysqlReplicationPassword"


SECRET_KEYS = (
    SECRET_SSH_PRIVATE_KEY,
    SECRET_KUBECONFIG,
    SECRET_MYSQL_ROOT_PASSWORD,
    SECRET_MYSQL_REPLICATION_PASSWORD,
)


# the stack config's namespace (`k8s-platform:cluster`): the Pulumi project's name
CONFIG_NAMESPACE = "k8s-platform"
MANAGED_BY = "k8s-platform"  # the value of MANAGED_BY_LABEL on everything the program creates
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
HOSTNAME_LABEL = "kubernetes.io/hostname"  # a node's name, as the kubelet labels it

# RFC 1123 label (namespaces, Services, container names) and subdomain (most object names)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# an environment variable name a container can be given
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
