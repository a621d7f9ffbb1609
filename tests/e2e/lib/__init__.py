"""Helpers behind the e2e fixtures (tests/e2e/conftest.py) and scripts/local_cluster.py.

Everything here runs on this machine and binds to loopback only:

- util       free ports, bounded waits, processes started and stopped by PID
- engine     where scripts/engine.sh put the Pulumi/Kubernetes/KWOK binaries
- pki        a throwaway CA + serving/client certs + service-account key
- kube       a minimal Kubernetes REST client (stdlib + PyYAML) and kubeconfig writer
- kwok_node  KWOK node manifests and add/remove (also a CLI the kubespray stand-in calls)
- cluster    etcd + kube-apiserver + controller-manager + scheduler + kwok, 3 fake nodes, static PVs
- sshd       a real OpenSSH sshd on 127.0.0.1 as the control host
- standin    the kubespray STAND-IN git repository (real Ansible, fake cluster operations)
- chartrepo  the project's test charts packaged and served over HTTP on loopback
- stack      a copy of the project + Pulumi.e2e.yaml, and a bounded `pulumi` runner
"""
