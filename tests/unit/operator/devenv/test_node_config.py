"""The node's settings that matter on a cgroup v1 host without systemd, behind Docker's FORWARD DROP."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest

from acgs_operator.devenv import node_config as cfg

pytestmark = pytest.mark.unit

PATHS = cfg.NodePaths(Path("/w/node"))


def test_containerd_has_its_own_root_state_and_socket_and_restricts_oom_scores() -> None:
    config = tomllib.loads(cfg.containerd_config(PATHS, "acgs.local/pause:3.10", Path("/usr/lib/cni")))
    assert config["version"] == 2
    assert config["root"] == "/w/node/containerd/root" and config["state"] == "/w/node/containerd/state"
    assert config["grpc"]["address"] == "/w/node/containerd/containerd.sock"
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "acgs.local/pause:3.10"
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": "/w/node/cni/net.d"}


def test_cni_chain_lets_pod_traffic_through_dockers_forward_policy() -> None:
    conflist = cfg.cni_conflist()
    assert [p["type"] for p in conflist["plugins"]] == ["bridge", "portmap", "firewall"]
    subnet = ipaddress.ip_network(conflist["plugins"][0]["ipam"]["ranges"][0][0]["subnet"])
    assert subnet.subnet_of(ipaddress.ip_network(cfg.POD_CIDR))
    assert not subnet.overlaps(ipaddress.ip_network(cfg.SERVICE_CIDR))


def test_kubelet_uses_cgroupfs_on_cgroup_v1_and_the_cluster_dns() -> None:
    config = cfg.kubelet_config(Path("/pki/ca.crt"))
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["failCgroupV1"] is False and config["failSwapOn"] is False
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["x509"]["clientCAFile"] == "/pki/ca.crt"
    assert config["clusterDNS"] == [cfg.CLUSTER_DNS_IP]
    assert ipaddress.ip_address(cfg.CLUSTER_DNS_IP) in ipaddress.ip_network(cfg.SERVICE_CIDR)


def test_kubelet_keeps_the_hosts_name_so_logs_and_exec_reach_it() -> None:
    args = cfg.kubelet_args(Path("/bin/kubelet"), PATHS, Path("/kc"), "192.0.2.2")
    assert not any(a.startswith("--hostname-override") for a in args)
    assert "--container-runtime-endpoint=unix:///w/node/containerd/containerd.sock" in args
    assert "--node-ip=192.0.2.2" in args


def test_controller_manager_signs_service_account_tokens_without_the_csr_signer() -> None:
    args = cfg.controller_manager_args(Path("/bin/kcm"), Path("/kc"), Path("/pki/sa.key"), Path("/pki/ca.crt"), 1)
    assert "--service-account-private-key-file=/pki/sa.key" in args
    assert "--root-ca-file=/pki/ca.crt" in args
    assert "--controllers=*,-csrsigning" in args


def test_kube_proxy_runs_iptables_and_leaves_conntrack_sysctls_alone() -> None:
    config = cfg.kube_proxy_config(Path("/kc"), "node-a")
    assert config["mode"] == "iptables" and config["hostnameOverride"] == "node-a"
    assert config["conntrack"]["maxPerCore"] == 0


def test_coredns_service_sits_at_the_address_the_kubelet_hands_to_pods() -> None:
    docs = {d["kind"]: d for d in cfg.coredns_manifests("acgs.local/coredns:v1")}
    assert docs["Service"]["spec"]["clusterIP"] == cfg.CLUSTER_DNS_IP
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["dnsPolicy"] == "Default"
    assert pod["containers"][0]["imagePullPolicy"] == "Never"
    assert "kubernetes cluster.local" in docs["ConfigMap"]["data"]["Corefile"]


def test_kuberay_runs_with_its_modules_cluster_role_without_leader_election() -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "manager-role"},
            "rules": [{"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["*"]}]}
    docs = cfg.kuberay_manifests("acgs.local/kuberay-operator:v1.5.0", role)
    kinds = {d["kind"]: d for d in docs}
    assert kinds["ClusterRole"]["metadata"]["name"] == kinds["ClusterRoleBinding"]["roleRef"]["name"]
    assert kinds["ClusterRole"]["rules"] == role["rules"]
    container = kinds["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["--enable-leader-election=false"]
    assert role["metadata"]["name"] == "manager-role"  # the module's document is not changed in place


def test_a_stale_pid_is_not_taken_for_a_node_component() -> None:
    import os
    import sys

    from acgs_operator.devenv.process import runs_program

    assert runs_program(os.getpid(), Path(sys.executable).name)
    assert not runs_program(os.getpid(), "kubelet")
    assert not runs_program(0, "kubelet")
