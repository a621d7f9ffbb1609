"""A minimal Kubernetes REST client: stdlib (urllib + ssl) and PyYAML only.

Small on purpose: the kubespray stand-in copies this file into its repository and
runs it with the Python of the control host's kubespray venv (ansible-core brings
PyYAML), so it must not need the `kubernetes` package or kubectl.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml

# kind -> (api prefix, plural, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Node": ("/api/v1", "nodes", False),
    "PersistentVolume": ("/api/v1", "persistentvolumes", False),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims", True),
    "Pod": ("/api/v1", "pods", True),
    "Service": ("/api/v1", "services", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Secret": ("/api/v1", "secrets", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "StorageClass": ("/apis/storage.k8s.io/v1", "storageclasses", False),
    "IngressClass": ("/apis/networking.k8s.io/v1", "ingressclasses", False),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "Event": ("/api/v1", "events", True),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
}


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")
        self.status = status


def write_kubeconfig(
    path: str, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, name: str = "k8s-platform-e2e"
) -> str:
    """An admin kubeconfig with embedded data, shaped like kubespray's admin.conf."""
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [
            {
                "name": "kubernetes-admin",
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
        "contexts": [{"name": f"kubernetes-admin@{name}", "context": {"cluster": name, "user": "kubernetes-admin"}}],
        "current-context": f"kubernetes-admin@{name}",
        "preferences": {},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return path


class Kube:
    """GET/POST/PATCH/DELETE against the API server of a kubeconfig (its current context)."""

    def __init__(self, kubeconfig: str, timeout: float = 15.0) -> None:
        with open(kubeconfig) as f:
            doc = yaml.safe_load(f)
        ctx_name = doc.get("current-context")
        ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"].rstrip("/")
        self.timeout = timeout
        base = os.path.dirname(os.path.abspath(kubeconfig))

        def data(key: str) -> bytes | None:
            if key + "-data" in (cluster | user):
                return base64.b64decode((cluster | user)[key + "-data"])
            if key in (cluster | user):
                with open(os.path.join(base, (cluster | user)[key]), "rb") as f:
                    return f.read()
            return None

        self.ctx = ssl.create_default_context()
        ca = data("certificate-authority")
        if ca:
            self.ctx.load_verify_locations(cadata=ca.decode())
        cert, key = data("client-certificate"), data("client-key")
        if cert and key:
            # ssl wants files; keep them only as long as loading takes
            with tempfile.TemporaryDirectory() as d:
                cp, kp = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
                for p, b in ((cp, cert), (kp, key)):
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(b)
                self.ctx.load_cert_chain(cp, kp)
        self.token = user.get("token")

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.server + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, method, path, exc.read().decode(errors="replace")) from None
        ctype = resp.headers.get("Content-Type", "")
        return json.loads(raw) if raw and "json" in ctype else raw.decode(errors="replace")

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    @staticmethod
    def path(kind: str, name: str | None = None, namespace: str | None = None, sub: str | None = None) -> str:
        prefix, plural, namespaced = RESOURCES[kind]
        p = prefix + (f"/namespaces/{namespace or 'default'}" if namespaced else "") + f"/{plural}"
        if name:
            p += f"/{urllib.parse.quote(name)}"
        if sub:
            p += f"/{sub}"
        return p

    def obj_path(self, obj: dict[str, Any], sub: str | None = None) -> str:
        md = obj["metadata"]
        return self.path(obj["kind"], md["name"], md.get("namespace"), sub)

    def apply(self, obj: dict[str, Any], manager: str = "k8s-platform-e2e", sub: str | None = None) -> Any:
        """Server-side apply (create or update), forcing ownership of the fields we set."""
        q = urllib.parse.urlencode({"fieldManager": manager, "force": "true"})
        return self.request("PATCH", f"{self.obj_path(obj, sub)}?{q}", obj, "application/apply-patch+yaml")

    def create(self, obj: dict[str, Any]) -> Any:
        md = obj["metadata"]
        return self.request("POST", self.path(obj["kind"], None, md.get("namespace")), obj)

    def delete(self, kind: str, name: str, namespace: str | None = None, missing_ok: bool = True) -> bool:
        try:
            self.request("DELETE", self.path(kind, name, namespace))
            return True
        except ApiError as exc:
            if exc.status == 404 and missing_ok:
                return False
            raise

    def read(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        try:
            return self.get(self.path(kind, name, namespace))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def list_events(self) -> list[dict[str, Any]]:
        """Events of every namespace, oldest first."""
        events = self.list("Event")
        return sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")

    def list(self, kind: str, namespace: str | None = None, selector: str = "") -> list[dict[str, Any]]:
        prefix, plural, namespaced = RESOURCES[kind]
        p = prefix + (f"/namespaces/{namespace}" if namespaced and namespace else "") + f"/{plural}"
        if selector:
            p += "?" + urllib.parse.urlencode({"labelSelector": selector})
        return list(self.get(p).get("items") or [])


def condition(obj: dict[str, Any] | None, ctype: str) -> str | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return str(c.get("status"))
    return None
