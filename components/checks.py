"""Checks of single values that components and the stack config share: hosts, IPs, URLs
(and the credentials they must not carry), Kubernetes names, quantities and durations, chart
versions, address pools.

A value another tool reads later is checked the way that tool reads it: URLs by an RFC 3986
parser (`rfc3986`), quantities and durations by the grammars of apimachinery and Go, each
held to the tool in tests/conformance/.

Each `*_check` returns the message a user sees (`'x' is not …`) or None; `checked()` in
`components.config_model` turns one into a field validator.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from rfc3986.exceptions import InvalidComponentsError, ValidationError
from rfc3986.misc import URI_MATCHER
from rfc3986.uri import URIReference
from rfc3986.validators import Validator

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


def _url_parts(value: str) -> dict[str, str | None]:
    """scheme, authority, path, query, fragment as written (RFC 3986's Appendix B split)."""
    m = URI_MATCHER.match(value)
    return m.groupdict() if m else {"scheme": None, "authority": None, "path": value, "query": None, "fragment": None}


def url_host(value: str) -> str:
    """The host of a URL as written (an IPv6 literal without its brackets), '' if it has none."""
    authority = _url_parts(value)["authority"] or ""
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if ":" in host else host


# what `rfc3986` checks of each part, and how a user fixes it
_URL_PART_HINTS = {
    "scheme": "its scheme is malformed",
    # rfc3986 names all three when the authority does not split into user@host:port at all
    "authority": "its host[:port] is malformed (a hostname, an IP address or a bracketed IPv6 address, a non-ASCII name in its xn-- form; a port from 1 to 65535)",
    "userinfo": "its user part has a character a URL does not allow there",
    "host": "its host is not a hostname, an IP address or a bracketed IPv6 address",
    "port": "its port is not a number from 1 to 65535",
    "path": (
        "its path has a character a URL does not allow (such as | \\ ^ ` \" < >, or a % not followed by "
        "two hex digits): percent-encode it (| is %7C)"
    ),
    "query": "its query has a character a URL does not allow: percent-encode it",
    "fragment": "its fragment has a character a URL does not allow",
}
_URL_VALIDATOR = (
    Validator()
    .require_presence_of("scheme")
    .check_validity_of("scheme", "userinfo", "host", "port", "path", "query", "fragment")
)


def url_problem(value: str, schemes: tuple[str, ...] = ("http", "https"), query: bool = True) -> str | None:
    """Why `value` is not a URL of one of `schemes` that git, helm, pip and curl read alike, or None.

    The parts are RFC 3986's, checked by `rfc3986` as written (its own parsing would
    percent-encode a space or a brace first, which is how `https://host/my charts` used to pass:
    the fetch then asks for `/my%20charts`). On top of the RFC: a host that is a hostname or an
    IP address, a port from 1 to 65535, no fragment (nothing sends one to the server), a query
    only where `query` allows one, and for file:// a path on this machine (git ignores a host
    there). The value is not echoed: the caller decides.
    """
    shape = " or ".join(f"{s}://host[:port][/path]" if s != "file" else "file:///path" for s in schemes)
    if "{" in value or "}" in value:
        return f"contains '{{' or '}}' (template text?): write the URL itself (a literal brace is %7B / %7D); expected {shape}"
    if any(c.isspace() or not c.isprintable() for c in value):
        return f"contains whitespace or a control character, which a URL never has (a space in a path is %20); expected {shape}"
    parts = _url_parts(value)
    scheme = parts["scheme"]
    if scheme is None or parts["authority"] is None:
        return f"is not a valid URL; expected {shape}"
    if scheme not in schemes:
        lower = " (write the scheme in lowercase)" if scheme.lower() in schemes else ""
        return f"has the scheme {scheme}://{lower}; expected {shape}"
    uri = URIReference(scheme, parts["authority"], parts["path"], parts["query"], parts["fragment"])
    try:
        _URL_VALIDATOR.validate(uri)
    except InvalidComponentsError as err:
        names = set(err.components) | ({"authority"} if {"host", "port", "userinfo"} <= set(err.components) else set())
        part = next(p for p in _URL_PART_HINTS if p in names)
        return f"is not a valid URL: {_URL_PART_HINTS[part]}; expected {shape}"
    except ValidationError:
        return f"is not a valid URL; expected {shape}"
    if parts["fragment"] is not None:
        return f"has a fragment ('#…'), which is never sent to the server: remove it; expected {shape}"
    if parts["query"] is not None and not query:
        return f"has a query ('?…'), which breaks the paths the fetcher appends: remove it; expected {shape}"
    authority = parts["authority"].rsplit("@", 1)[-1]
    host = url_host(value)
    if scheme == "file":
        if host not in ("", "localhost") or ":" in authority:
            return "names another machine: a file:// URL is a path on the control host (file:///path)"
        return None
    port = authority.rsplit("]", 1)[-1].partition(":")[2] if ":" in authority.rsplit("]", 1)[-1] else None
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        return f"is not a valid URL: {_URL_PART_HINTS['port']}; expected {shape}"
    if authority.startswith("["):
        if not is_ip(host.replace("%25", "%")) or ":" not in host:
            return f"is not a valid URL: {_URL_PART_HINTS['host']}; expected {shape}"
    elif not host or not is_host(host):
        return f"is not a valid URL: {_URL_PART_HINTS['host']}; expected {shape}"
    return None


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
        if problem := url_problem(value, schemes):
            return f"{value!r} {problem}" if value.isprintable() else problem
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


# Kubernetes' quantity grammar (apimachinery's resource.ParseQuantity) without a sign: no
# request, limit or size is negative. tests/conformance/test_reference_parsers.py holds it to
# ParseQuantity itself.
QUANTITY = re.compile(r"^(\d+(\.\d*)?|\.\d+)(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$")
# distribution's reference grammar (reference/regexp.go): an optional registry host (a domain
# name or an address, with a port) before the first `/`, then lowercase path components
_DOMAIN = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::\d+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE = re.compile(
    rf"^(?P<repo>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(:(?P<tag>[\w][\w.-]{0,127}))?(@(?P<digest>sha256:[0-9a-f]{64}))?$"
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
        "": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    }  # fmt: skip
    if suffix not in factors:  # a decimal exponent, e3 or E-2
        exponent = suffix[1:]
        if len(exponent.lstrip("+-")) > 3:  # beyond a float either way (and int() refuses thousands of digits)
            exponent = "-999" if exponent.startswith("-") else "999"
        try:
            return number * 10.0 ** int(exponent)
        except OverflowError:
            return math.inf if number else 0.0
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


def image_registry(image: str) -> tuple[str, str]:
    """(registry, the rest) of an image reference, as containerd resolves it: a first path
    component with a dot or a port, or `localhost`, is a registry; anything else is Docker
    Hub's, where a one-part name is an official image (`nginx:1.27` → docker.io,
    `library/nginx:1.27`)."""
    first, sep, rest = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "docker.io", image if sep else f"library/{image}"


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


# Go's time.ParseDuration (what Istio and kubespray's Go tools read) without a sign or a bare 0:
# durations here are positive. tests/conformance/test_reference_parsers.py holds it to Go's.
DURATION = re.compile(r"^((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$")
DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
DURATION_NANOSECONDS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
# a Go duration is an int64 of nanoseconds: about 292 years at most
MAX_DURATION_NANOSECONDS = 2**63 - 1


def parse_duration(value: str) -> float | None:
    """Seconds of a Go/Istio duration ('250ms', '5s', '1m30s'), None if malformed or beyond Go's range."""
    if not DURATION.fullmatch(value):
        return None
    nanoseconds = sum(Decimal(n) * DURATION_NANOSECONDS[u] for n, u in DURATION_PART.findall(value))
    if nanoseconds > MAX_DURATION_NANOSECONDS:
        return None
    return float(nanoseconds / 10**9)


def format_seconds(seconds: float) -> str:
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def project_file_problem(path: str, root: Path | None, what: str = "file") -> str | None:
    """Why `path` is not a file of the project (relative to its root, inside it), or None.

    Without a root (a check of the settings alone) only the path's shape is checked."""
    if path.startswith("/") or ".." in Path(path).parts:
        return f"{path!r} must be a path inside the project (relative, no '..')"
    if root is not None and not (root / path).is_file():
        return f"{what} {path!r} does not exist (paths are relative to the project root {root})"
    return None
