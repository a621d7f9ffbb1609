"""Checks of single values that components and the stack config share: hosts, IPs, URLs
(and the credentials they must not carry), Kubernetes names, chart versions, address pools.

Each `*_check` returns the message a user sees (`'x' is not …`) or None; `checked()` in
`components.config_model` turns one into a field validator.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from components.vocabulary import (
    CONFIG_NAMESPACE,
    DNS_LABEL,
    DNS_SUBDOMAIN,
    SECRET_KUBECONFIG,
    SECRET_MYSQL_REPLICATION_PASSWORD,
    SECRET_MYSQL_ROOT_PASSWORD,
    SECRET_SSH_PRIVATE_KEY,
)

HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$"
)
SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$"
)


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_host(value: str) -> bool:
    if re.fullmatch(r"[\d.]+", value):
        return is_ip(value)  # all digits and dots is a mistyped IPv4 address, not a hostname
    return is_ip(value) or bool(HOSTNAME.fullmatch(value))


def is_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    m = re.fullmatch(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>.+)", value)
    if not m or m.group("scheme") not in schemes:
        return False
    rest = m.group("rest")
    authority = rest.split("/", 1)[0]
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    host = authority
    if authority.startswith("["):
        host = authority[1 : authority.find("]")] if "]" in authority else ""
    elif ":" in authority:
        host, port = authority.rsplit(":", 1)
        if not port.isdigit() or not 0 < int(port) < 65536:
            return False
    return bool(host) and is_host(host)


def url_has_password(value: str) -> bool:
    authority = value.split("://", 1)[-1].split("/", 1)[0]
    return "@" in authority and ":" in authority.rsplit("@", 1)[0]


def url_has_credentials(value: str) -> bool:
    """A password, or any user part in an http(s)/oci URL (a token passed as user name)."""
    if url_has_password(value):
        return True
    scheme, sep, rest = value.partition("://")
    return bool(sep) and scheme in ("http", "https", "oci") and "@" in rest.split("/", 1)[0]


CREDENTIALS_IN_URL = (
    "must not carry credentials (user:token@): stack files, the state and PR previews are not "
    "secret; use a source that needs none, or credentials configured on the machine that fetches"
)
# transports that authenticate the server: what staging and prod fetch code and charts over
AUTHENTICATED_SCHEMES = ("https", "ssh", "oci", "file")


def label_check(what: str, max_len: int = 63) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if len(value) > max_len or not DNS_LABEL.fullmatch(value):
            return (
                f"{value!r} is not a valid {what}: lowercase letters, digits and '-', "
                f"starting and ending with a letter or digit, at most {max_len} characters (RFC 1123)"
            )
        return None

    return check


def subdomain_check(what: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if len(value) > 253 or not DNS_SUBDOMAIN.fullmatch(value):
            return f"{value!r} is not a valid {what}: lowercase RFC 1123 DNS name (letters, digits, '-', '.')"
        return None

    return check


def url_check(schemes: tuple[str, ...] = ("http", "https")) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        if url_has_credentials(value):  # first, so that a malformed URL with a token is not echoed
            return CREDENTIALS_IN_URL
        if not is_url(value, schemes):
            return f"{value!r} is not a valid URL; expected {' or '.join(s + '://host[:port][/path]' for s in schemes)}"
        return None

    return check


def host_check(value: str) -> str | None:
    return None if is_host(value) else f"{value!r} is not a valid IP address or hostname"


def ip_check(value: str) -> str | None:
    return None if is_ip(value) else f"{value!r} is not a valid IP address"


def semver_check(value: str) -> str | None:
    return None if SEMVER.fullmatch(value) else f"{value!r} is not a semantic version like '1.2.3'"


def pool_check(value: str) -> str | None:
    if "-" in value:
        lo, _, hi = value.partition("-")
        if is_ip(lo.strip()) and is_ip(hi.strip()):
            return None
    else:
        try:
            ipaddress.ip_network(value, strict=False)
            return None
        except ValueError:
            pass
    return f"{value!r} is not a CIDR ('10.0.0.0/28') or an address range ('10.0.0.10-10.0.0.20')"


def chart_name_check(value: str) -> str | None:
    return None if re.fullmatch(r"[a-z0-9][a-z0-9._-]*", value) else f"{value!r} is not a chart name"


CHART_REPO_SCHEMES = ("https", "http", "oci")


QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE]\d+)?$")
IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._/-][a-z0-9]+|:\d+/)*)(:(?P<tag>[\w][\w.-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
CONFIG_KEY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


def parse_quantity(value: str) -> float | None:
    """A Kubernetes quantity as a number (bytes or cores), None if malformed."""
    m = QUANTITY.fullmatch(value)
    if not m:
        return None
    number = float(m.group(1))
    suffix = m.group(3) or ""
    factors = {
        "": 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    }  # fmt: skip
    if suffix[:1] in ("e", "E") and suffix[1:].isdigit():
        return number * 10 ** int(suffix[1:])
    return number * factors[suffix]


def image_problem(image: str) -> str | None:
    """Why an image reference is not acceptable (unpinned, malformed), or None."""
    m = IMAGE.fullmatch(image)
    if not m:
        return f"{image!r} is not an image reference like 'registry/name:1.2.3'"
    if m.group("digest"):
        return None
    tag = m.group("tag")
    if not tag:
        return f"{image!r} has no tag; pin a version, e.g. '{image}:1.2.3'"
    if tag == "latest":
        return f"{image!r} uses 'latest'; pin a version so every environment runs the same image"
    return None


def official_image(image: str) -> str:
    """The Docker Official Image's name `image` refers to ('nginx' for 'nginx:1.27' or
    'docker.io/library/nginx:1.27'), or '' for any other image."""
    m = IMAGE.fullmatch(image)
    if not m:
        return ""
    path = image.split("@", 1)[0]
    path = path[: path.rfind(":")] if ":" in path.rsplit("/", 1)[-1] else path
    for prefix in ("docker.io/library/", "index.docker.io/library/", "library/"):
        if path.startswith(prefix):
            path = path[len(prefix) :]
    return path if "/" not in path else ""


def root_image_hint(image: str) -> str:
    """Why an official image will likely not start with the platform's non-root default, and the fix."""
    return (
        f"{image!r} is a Docker Official Image; most of them start as root, and the kubelet refuses to start "
        f"a root image under runAsNonRoot (this app's default): the pods would stop at CreateContainerConfigError "
        f"'container has runAsNonRoot and image will run as root'. Use an image built to run unprivileged "
        f"(for nginx: nginxinc/nginx-unprivileged with port: 8080), or set runAsUser to a non-root uid the "
        f"image supports. runAsNonRoot: false would start it as root, but still without capabilities (every app "
        f"drops them all), so a root process that switches users still fails"
    )


SETTING_KEYS = ("environment", "cluster", "schedulableControlPlane", "addons", "helm", "mysql", "apps", "storage")
# Infrastructure credentials never handed to an app: the SSH key, the kubeconfig, and
# MySQL's root and replication passwords (an app holding root could drop every database
# and rewrite replication).
PLATFORM_ONLY_SECRETS = (
    SECRET_SSH_PRIVATE_KEY, SECRET_KUBECONFIG, SECRET_MYSQL_ROOT_PASSWORD, SECRET_MYSQL_REPLICATION_PASSWORD,
)  # fmt: skip


def secret_key_check(value: str) -> str | None:
    if value.startswith(f"{CONFIG_NAMESPACE}:"):
        return f"{value!r}: give the key without the namespace, e.g. {value.split(':', 1)[1]!r}"
    if not CONFIG_KEY_NAME.fullmatch(value):
        return f"{value!r} is not a config key name like 'apiToken' (letters, digits, '_' and '-')"
    if value in SETTING_KEYS:
        return f"{value!r} is a platform setting, not a secret; name a key set with pulumi config set --secret"
    if value in PLATFORM_ONLY_SECRETS:
        return f"{value!r} is an infrastructure credential and is never given to an app; set a dedicated secret"
    return None


DURATION = re.compile(r"^((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str) -> float | None:
    """Seconds of a Go/Istio duration ('250ms', '5s', '1m30s'), None if malformed."""
    if not DURATION.fullmatch(value):
        return None
    return sum(float(n) * DURATION_UNITS[u] for n, u in DURATION_PART.findall(value))


def format_seconds(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
