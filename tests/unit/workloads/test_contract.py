from acgs_operator.config import OperatorConfig
from acgs_workloads.contract import (
    ComplianceReport,
    GateResult,
    ModelArtifact,
    Progress,
    ProgressEvent,
    ResultEvent,
    TrainingMetrics,
    format_event,
    parse_events,
)


def test_operator_config_from_env() -> None:
    cfg = OperatorConfig.from_env({"ACGS_RAY_ADDRESS": "http://ray:8265", "ACGS_METRICS_PORT": "0", "OTHER": "x"})
    assert cfg.ray_address == "http://ray:8265" and cfg.metrics_port == 0 and cfg.health_port == 8080
    assert (cfg.worker_limit, cfg.worker_idle_timeout) == (100, 1.0)
    unlimited = OperatorConfig.from_env({"ACGS_WORKER_LIMIT": "0", "ACGS_WORKER_IDLE_TIMEOUT": "5"})
    assert (unlimited.worker_limit, unlimited.worker_idle_timeout) == (0, 5.0)


def test_events_round_trip_through_noisy_logs() -> None:
    progress = ProgressEvent(progress=Progress(epoch=1, total_epochs=3, step=10, percent=33.3, loss=0.7))
    result = ResultEvent(
        metrics=TrainingMetrics(accuracy=0.9, f1=0.88),
        compliance=ComplianceReport(
            constitution_hash="cdd01ef066bc6cf2", score=0.97, threshold=0.9, passed=True, evaluated_examples=800
        ),
        model=ModelArtifact(uri="file:///a", sha256="0" * 64, size_bytes=10),
        gates=GateResult(passed=True),
    )
    log = "\n".join(
        [
            "starting",
            "(RayTrainWorker pid=1) " + format_event(progress),
            "ACGS_EVENT {not json",
            format_event(result),
        ]
    )
    events = parse_events(log)
    assert events == [progress, result]
