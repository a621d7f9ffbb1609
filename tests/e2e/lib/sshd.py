"""The control host: a real OpenSSH `sshd` on 127.0.0.1:<free port>, run in the foreground.

The program reaches it exactly as it would reach a real control host (pulumi-command's
`remote.Command` over SSH, key auth, pinned host key). The host key and the client key
pair are generated per run; the session environment carries `PIP_NO_INDEX` /
`PIP_FIND_LINKS` (sshd_config `SetEnv`, OpenSSH >= 8.7) so the program's
`pip install -r requirements.txt` installs kubespray's own requirements (ansible 11 /
ansible-core 2.18) from a local wheelhouse.
"""

from __future__ import annotations

import getpass
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .util import Proc, free_port, port_open, run, tail, wait_until

SSHD = "/usr/sbin/sshd"


@dataclass
class ControlHost:
    dir: Path
    env: dict[str, str] = field(default_factory=dict)  # extra session environment (SetEnv)
    port: int = 0
    user: str = field(default_factory=getpass.getuser)
    proc: Proc | None = None

    @property
    def client_key(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def host_key_file(self) -> Path:
        return self.dir / "ssh_host_ed25519_key"

    @property
    def private_key(self) -> str:
        """The client private key (OpenSSH format), for `sshPrivateKey`."""
        return self.client_key.read_text()

    @property
    def host_public_key(self) -> str:
        """`ssh-ed25519 AAAA…` (no comment), for `controlHost.hostKey`."""
        return " ".join(Path(str(self.host_key_file) + ".pub").read_text().split()[:2])

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    def start(self, timeout: float = 30) -> ControlHost:
        if not os.path.exists(SSHD):
            raise FileNotFoundError(f"{SSHD} missing: apt-get install -y openssh-server")
        self.dir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        for key in (self.host_key_file, self.client_key):
            if not key.exists():
                run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", key.name, "-f", str(key)], 30)
        auth = self.dir / "authorized_keys"
        auth.write_text(Path(str(self.client_key) + ".pub").read_text())
        auth.chmod(0o600)
        self.port = self.port or free_port()
        setenv = " ".join(f"{k}={v}" for k, v in sorted(self.env.items()) if " " not in v)
        cfg = self.dir / "sshd_config"
        cfg.write_text(
            "\n".join(
                [
                    "# e2e control host: loopback only, key auth only",
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {self.host_key_file}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {auth}",
                    "StrictModes no",
                    "PermitRootLogin prohibit-password",
                    f"AllowUsers {self.user}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "X11Forwarding no",
                    "PrintMotd no",
                    "MaxSessions 50",
                    "MaxStartups 50:30:100",
                    "LogLevel VERBOSE",
                    "Subsystem sftp internal-sftp",
                    *([f"SetEnv {setenv}"] if setenv else []),
                    "",
                ]
            )
        )
        run([SSHD, "-t", "-f", str(cfg)], 15)
        self.proc = Proc("sshd", [SSHD, "-D", "-e", "-f", str(cfg)], self.log, cwd=self.dir).start()
        try:
            wait_until(lambda: self._check_alive() and port_open(self.port), timeout, f"sshd on 127.0.0.1:{self.port}")
            wait_until(lambda: self.ssh("true", timeout=10, check=False).returncode == 0, timeout, "ssh login")
        except BaseException as exc:
            self.stop()
            raise RuntimeError(f"sshd did not come up: {exc}\nlog {self.log}:\n{tail(self.log)}") from exc
        return self

    def _check_alive(self) -> bool:
        assert self.proc is not None
        if not self.proc.alive():
            raise RuntimeError(f"sshd exited ({self.proc.exit_code()})")
        return True

    def known_hosts(self) -> Path:
        path = self.dir / "known_hosts"
        path.write_text(f"[127.0.0.1]:{self.port} {self.host_public_key}\n")
        return path

    def ssh_argv(self) -> list[str]:
        return [
            shutil.which("ssh") or "ssh",
            "-i", str(self.client_key),
            "-p", str(self.port),
            "-o", "BatchMode=yes",
            "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts()}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=5",
            f"{self.user}@127.0.0.1",
        ]  # fmt: skip

    def ssh(self, command: str, timeout: float = 60, check: bool = True):  # type: ignore[no-untyped-def]
        """Run `command` on the control host through sshd (a real login session)."""
        return run([*self.ssh_argv(), command], timeout, check=check)

    def stop(self, grace: float = 10.0) -> str:
        return self.proc.stop(grace) if self.proc else "not started"
