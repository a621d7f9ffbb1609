"""A real S3-compatible object store for the team-backend tests: SeaweedFS on loopback.

`weed server -s3` (master, volume server, filer and S3 gateway in one process) built by
scripts/engine.sh, started by PID with its own data dir and free loopback ports, one
identity with a random access key, one bucket created with `weed shell`. The Pulumi
CLI reaches it exactly as a team's CI reaches S3: `PULUMI_BACKEND_URL=s3://…` with the
endpoint in the URL's query and `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` in the
environment, never in the URL.

The filer's HTTP API (loopback only) lets a test read every object the backend wrote
(state, history, backups, locks) without an S3 client.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import engine
from .stack import Backend
from .util import Proc, free_port, port_open, run, tail, wait_until

REGION = "us-east-1"


@dataclass
class ObjectStore:
    dir: Path
    bucket: str = "pulumi-state"
    access_key: str = field(default_factory=lambda: "team-" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    ports: dict[str, int] = field(default_factory=dict)
    proc: Proc | None = None

    @property
    def log(self) -> Path:
        return self.dir / "weed.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def backend_url(self, prefix: str) -> str:
        """`s3://bucket/prefix?…`: what a team puts in PULUMI_BACKEND_URL (no credentials in it)."""
        # response_checksum_validation: SeaweedFS does not send the response checksums the
        # AWS SDK v2 validates by default (it would warn on every read)
        query = (
            f"endpoint={self.endpoint}&region={REGION}&use_path_style=true&response_checksum_validation=when_required"
        )
        return f"s3://{self.bucket}/{prefix}?{query}"

    def credentials(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": REGION}

    def start(self, timeout: float = 90) -> ObjectStore:
        weed = engine.binary("weed")
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "team",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = self.dir / "s3.json"
        config.write_text(json.dumps(identities))
        config.chmod(0o600)
        for name in ("master", "volume", "filer", "s3"):
            self.ports[name] = free_port()
            self.ports[f"{name}.grpc"] = free_port()
        argv = [
            # its log files in its own directory, not /tmp
            weed, f"-logdir={self.dir}", "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{name}.port={self.ports[name]}" for name in ("master", "volume", "filer", "s3")),
            *(f"-{name}.port.grpc={self.ports[name + '.grpc']}" for name in ("master", "volume", "filer", "s3")),
            "-s3", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64", "-volume.max=16", "-volume.preStopSeconds=0", "-metricsPort=0",
        ]  # fmt: skip
        self.proc = Proc("weed", argv, self.log, cwd=self.dir).start()
        wait_until(
            lambda: self._alive_or_raise() and port_open(self.ports["s3"]) and port_open(self.ports["filer"]),
            timeout,
            f"SeaweedFS S3 on 127.0.0.1:{self.ports['s3']}",
            on_timeout=lambda: tail(self.log),
        )
        # the bucket: made once by the team's admin; Pulumi does not create it
        wait_until(self._create_bucket, 60, f"bucket {self.bucket}", interval=1.0, on_timeout=lambda: tail(self.log))
        return self

    def _alive_or_raise(self) -> bool:
        assert self.proc is not None
        if not self.proc.alive():
            raise RuntimeError(f"weed exited ({self.proc.exit_code()}):\n{tail(self.log)}")
        return True

    def _create_bucket(self) -> bool:
        # host:port.grpcPort: the gRPC port is not the default port + 10000 here
        master = f"127.0.0.1:{self.ports['master']}.{self.ports['master.grpc']}"
        shell = [engine.binary("weed"), "shell", f"-master={master}"]
        run(shell, timeout=30, input=f"s3.bucket.create -name {self.bucket}\n", check=False)
        listed = run(shell, timeout=30, input="s3.bucket.list\n", check=False)
        return any(line.split() and line.split()[0] == self.bucket for line in listed.stdout.splitlines())

    # ------------------------------------------------------------------ reading what Pulumi wrote
    def _filer(self, path: str, query: str = "") -> bytes:
        url = f"http://127.0.0.1:{self.ports['filer']}{urllib.parse.quote(path)}{'?' + query if query else ''}"
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return bytes(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return b""
            raise

    def objects(self, prefix: str) -> Iterator[tuple[str, bytes]]:
        """(key, content) of every object under `prefix` in the bucket, depth first."""
        stack = [f"/buckets/{self.bucket}/{prefix.strip('/')}".rstrip("/")]
        while stack:
            directory = stack.pop()
            last = ""
            while True:
                query = urllib.parse.urlencode({"limit": 1000, "lastFileName": last})
                listing = json.loads(self._filer(f"{directory}/", query) or b"{}")
                entries = listing.get("Entries") or []
                for entry in entries:
                    full = entry["FullPath"]
                    if entry.get("Mode", 0) & 0o20000000000:  # os.ModeDir
                        stack.append(full)
                    else:
                        yield full.removeprefix(f"/buckets/{self.bucket}/"), self._filer(full)
                if not listing.get("ShouldDisplayLoadMore") or not entries:
                    break
                last = entries[-1]["FullPath"].rsplit("/", 1)[-1]

    def backend(self, prefix: str) -> Backend:
        """The shared backend under `prefix`, as an E2EStack uses it."""
        return Backend(
            url=self.backend_url(prefix),
            env=self.credentials(),
            objects=lambda: list(self.objects(prefix)),
        )

    def keys(self, prefix: str) -> list[str]:
        return sorted(key for key, _ in self.objects(prefix))

    def stop(self, grace: float = 10.0) -> str:
        return self.proc.stop(grace) if self.proc else "not started"
