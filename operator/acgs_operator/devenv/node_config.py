"""What a real single-node cluster is made of, as data: configs, command lines and manifests.

Pure functions only (no processes, no files): ``node.py`` writes and runs what these return, and the
unit tests check the settings that matter on this kind of host (cgroup v1, no systemd, Docker's
FORWARD policy, a kernel that refuses some OOM score changes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POD_CIDR = "10.244.0.0/16"
NODE_POD_SUBNET = "10.244.0.0/24"
SERVICE_CIDR = "10.0.0.0/24"  # the control plane's --service-cluster-ip-range
CLUSTER_DNS_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"
CNI_BRIDGE = "acgs0"
CNI_NETWORK = "acgs"
KUBELET_PORT = 10250
DNS_NAMESPACE = "kube-system"
KUBERAY_NAMESPACE = "kuberay-system"
# The kubelet reclaims disk (and removes every image no pod uses) below this share free: a development
# machine's disk is shared with everything else, so only when it is nearly full.
EVICTION_DISK_PERCENT = 3


@dataclass(frozen=True)
class NodePaths:
    """Where one node keeps its state; everything lives under ``workdir``."""

    workdir: Path

    @property
    def containerd_root(self) -> Path:
        return self.workdir / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.workdir / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.workdir / "containerd" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.workdir / "containerd" / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.workdir / "cni" / "net.d"

    @property
    def kubelet_root(self) -> Path:
        return self.workdir / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.workdir / "kubelet-config.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.workdir / "kube-proxy-config.yaml"

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"


def containerd_config(paths: NodePaths, pause_image: str, cni_bin_dir: Path) -> str:
    """containerd 1.6 (config version 2) with its own root, state and socket, beside Docker's.

    ``restrict_oom_score_adj``: without it every sandbox fails to start on this host (runc: "can't get
    final child's PID from pipe: EOF"), because the kernel refuses a lower OOM score than containerd's.
    ``SystemdCgroup = false``: there is no systemd; the kubelet uses the cgroupfs driver too.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join(
        [
            "version = 2",
            f'root = "{paths.containerd_root}"',
            f'state = "{paths.containerd_state}"',
            "",
            "[grpc]",
            f'  address = "{paths.containerd_socket}"',
            "",
            f"[{cri}]",
            f'  sandbox_image = "{pause_image}"',
            "  restrict_oom_score_adj = true",
            "  enable_selinux = false",
            f"[{cri}.containerd]",
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            f"[{cri}.containerd.runtimes.runc]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{cri}.containerd.runtimes.runc.options]",
            "  SystemdCgroup = false",
            f"[{cri}.cni]",
            f'  bin_dir = "{cni_bin_dir}"',
            f'  conf_dir = "{paths.cni_conf_dir}"',
            "",
        ]
    )


def cni_conflist() -> dict[str, Any]:
    """bridge + host-local for the pods, portmap for hostPorts, and ``firewall``: Docker sets the FORWARD
    policy to DROP, and the firewall plugin lets the pods' traffic through it."""
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": CNI_BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": NODE_POD_SUBNET}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "firewall", "backend": "iptables"},
        ],
    }


def kubelet_config(ca_cert: Path) -> dict[str, Any]:
    """KubeletConfiguration for a cgroup v1 host without systemd, swap allowed, the API server's CA trusted.

    It listens on every address: the API server reaches it by the host's name for logs, exec and
    port-forward, and that name may resolve to loopback (/etc/hosts)."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "address": "0.0.0.0",
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        "evictionHard": {
            "memory.available": "200Mi",
            "nodefs.available": f"{EVICTION_DISK_PERCENT}%",
            "imagefs.available": f"{EVICTION_DISK_PERCENT}%",
            "nodefs.inodesFree": f"{EVICTION_DISK_PERCENT}%",
        },
        "imageGCHighThresholdPercent": 97,
        "imageGCLowThresholdPercent": 95,
        "serializeImagePulls": False,
        "containerLogMaxSize": "10Mi",
        "maxPods": 110,
    }


def kube_proxy_config(kubeconfig: Path, node_name: str) -> dict[str, Any]:
    """iptables mode; conntrack left as the host has it (a container may not change those sysctls)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "clusterCIDR": POD_CIDR,
        "hostnameOverride": node_name,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
    }


def kubelet_args(binary: Path, paths: NodePaths, kubeconfig: Path, node_ip: str) -> list[str]:
    # no --hostname-override: the node is named after the host, so the API server's logs/exec reach it
    return [
        str(binary),
        f"--config={paths.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--container-runtime-endpoint=unix://{paths.containerd_socket}",
        f"--root-dir={paths.kubelet_root}",
        f"--node-ip={node_ip}",
        "--v=1",
    ]


def kube_proxy_args(binary: Path, paths: NodePaths) -> list[str]:
    return [str(binary), f"--config={paths.kube_proxy_config}", "--v=1"]


def scheduler_args(binary: Path, kubeconfig: Path, port: int) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--v=1",
    ]


def controller_manager_args(binary: Path, kubeconfig: Path, sa_key: Path, ca_cert: Path, port: int) -> list[str]:
    # csrsigning needs the CA's key; the node's and components' certificates come from our own PKI instead
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        f"--service-account-private-key-file={sa_key}",
        f"--root-ca-file={ca_cert}",
        "--use-service-account-credentials=true",
        "--controllers=*,-csrsigning",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        f"--cluster-cidr={POD_CIDR}",
        "--allocate-node-cidrs=false",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--v=1",
    ]


def coredns_manifests(image: str) -> list[dict[str, Any]]:
    """Cluster DNS as in kubeadm: a CoreDNS Deployment behind Service ``kube-dns`` at CLUSTER_DNS_IP."""
    labels = {"k8s-app": "kube-dns"}
    corefile = (
        ".:53 {\n"
        "    errors\n"
        "    health :8080\n"
        "    ready :8181\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "    }\n"
        "    forward . /etc/resolv.conf\n"
        "    cache 30\n"
        "    loadbalance\n"
        "}\n"
    )
    meta = {"name": "coredns", "namespace": DNS_NAMESPACE}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "system:coredns"},
            "rules": [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": "system:coredns"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
            "subjects": [{"kind": "ServiceAccount", **meta}],
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"Corefile": corefile}},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {**meta, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": "coredns",
                        "dnsPolicy": "Default",  # forward to the host's resolver, not to itself
                        "priorityClassName": "system-cluster-critical",
                        "containers": [
                            {
                                "name": "coredns",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["-conf", "/etc/coredns/Corefile"],
                                "ports": [
                                    {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                    {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                ],
                                "resources": {"requests": {"cpu": "20m", "memory": "32Mi"},
                                              "limits": {"memory": "170Mi"}},
                                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
                                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                                  "initialDelaySeconds": 10},
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
                                    "readOnlyRootFilesystem": True,
                                },
                            }
                        ],
                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": DNS_NAMESPACE, "labels": labels},
            "spec": {
                "selector": labels,
                "clusterIP": CLUSTER_DNS_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                ],
            },
        },
    ]


def kuberay_manifests(image: str, cluster_role: dict[str, Any]) -> list[dict[str, Any]]:
    """The KubeRay operator as a pod, with the ClusterRole its module ships (``config/rbac/role.yaml``)."""
    name = "kuberay-operator"
    labels = {"app.kubernetes.io/name": name}
    role = {**cluster_role, "metadata": {"name": name}}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KUBERAY_NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": KUBERAY_NAMESPACE}},
        role,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": KUBERAY_NAMESPACE}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": KUBERAY_NAMESPACE, "labels": labels},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": name,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
                        "containers": [
                            {
                                "name": name,
                                "image": image,
                                "imagePullPolicy": "Never",
                                "args": ["--enable-leader-election=false"],
                                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                              "limits": {"memory": "512Mi"}},
                                "securityContext": {"allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True},
                            }
                        ],
                    },
                },
            },
        },
    ]


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2) + "\n"
