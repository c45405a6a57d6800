"""The development cluster's pure parts: why pods are not ready."""

from __future__ import annotations

from typing import Any

from acgs_operator.devenv import cluster

NODE_UNDER_DISK_PRESSURE: dict[str, Any] = {
    "metadata": {"name": "vm"},
    "spec": {"taints": [{"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"}]},
    "status": {
        "conditions": [
            {"type": "MemoryPressure", "status": "False", "message": "kubelet has sufficient memory available"},
            {"type": "DiskPressure", "status": "True", "message": "kubelet has disk pressure"},
            {"type": "Ready", "status": "True", "message": "kubelet is posting ready status"},
        ]
    },
}
PENDING = {
    "items": [
        {
            "metadata": {"name": "coredns-7f9789ffbf-x"},
            "status": {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 node(s) had untolerated taint(s).",
                    }
                ],
            },
        },
        {
            "metadata": {"name": "kuberay-operator-1"},
            "status": {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "manager", "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "not present"}}}
                ],
            },
        },
    ]
}
EVENTS = {
    "items": [
        {"type": "Normal", "reason": "Scheduled", "message": "ok", "involvedObject": {"name": "a"}},
        {
            "type": "Warning",
            "reason": "FailedScheduling",
            "message": "untolerated taint",
            "involvedObject": {"name": "b"},
        },
    ]
}


def test_stuck_report_names_the_pressure_the_taint_and_each_pods_reason() -> None:
    report = cluster.stuck_report({"items": [NODE_UNDER_DISK_PRESSURE]}, PENDING, EVENTS)
    assert report == [
        "node vm: DiskPressure=True (kubelet has disk pressure)",
        "node vm: taint node.kubernetes.io/disk-pressure:NoSchedule",
        "pod coredns-7f9789ffbf-x: Pending; Unschedulable: 0/1 nodes are available: "
        "1 node(s) had untolerated taint(s).",
        "pod kuberay-operator-1: Pending; manager ErrImageNeverPull: not present",
        "event b: FailedScheduling: untolerated taint",
    ]


def test_stuck_report_of_a_healthy_node_and_no_pods_is_empty() -> None:
    healthy = {"metadata": {"name": "vm"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert cluster.stuck_report({"items": [healthy]}, {"items": []}, {"items": []}) == []
    not_ready = {"metadata": {"name": "vm"}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert cluster.stuck_report({"items": [not_ready]}, {}, {}) == ["node vm: Ready=False ()"]
