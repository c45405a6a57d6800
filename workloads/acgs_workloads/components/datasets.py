"""Where a run's examples come from: the component's generator or a JSONL/Parquet file (pyarrow)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.json as pajson
import pyarrow.parquet as pq

from acgs_workloads.artifacts import read_bytes, write_bytes
from acgs_workloads.components.base import LABEL, Columns, Component
from acgs_workloads.contract import ConstitutionSnapshot, DatasetSpec, ModelSpec


def load_columns(component: Component, dataset: DatasetSpec, spec: ModelSpec,
                 constitution: ConstitutionSnapshot | None = None) -> Columns:
    """The labelled columns of ``dataset`` for ``component`` (generated labels follow ``constitution``)."""
    if dataset.generator is not None:
        return component.generate(dataset.generator.examples, dataset.generator.seed, spec, constitution)
    if dataset.uri is None:
        raise ValueError("dataset needs a generator or a uri")
    return read_columns(dataset.uri, component)


def _to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return np.array(column.to_pylist())
    return column.to_numpy(zero_copy_only=False)


def read_columns(uri: str, component: Component) -> Columns:
    """Columns from a JSONL or Parquet file; ``label`` may be a class index or a class name."""
    data = read_bytes(uri)
    table = pq.read_table(io.BytesIO(data)) if uri.endswith(".parquet") else pajson.read_json(io.BytesIO(data))
    cols = {name: _to_numpy(table.column(name)) for name in table.column_names}
    if LABEL not in cols:
        raise ValueError(f"dataset {uri} has no {LABEL!r} column")
    labels = cols[LABEL]
    if labels.dtype.kind in "OUS":
        unknown = sorted({str(v) for v in labels} - set(component.classes))
        if unknown:
            raise ValueError(f"dataset {uri}: unknown labels {unknown[:5]} for {component.name}")
        cols[LABEL] = np.array([component.classes.index(str(v)) for v in labels], dtype=np.int64)
    cols[LABEL] = cols[LABEL].astype(np.int64)
    if len(cols[LABEL]) < 2:
        raise ValueError(f"dataset {uri} needs at least two examples")
    return cols


def write_columns(cols: Columns, uri: str) -> None:
    """Write columns as JSONL or Parquet (by extension); 2-D columns become lists."""
    arrays: dict[str, Any] = {}
    for name, array in cols.items():
        arrays[name] = pa.array(array.tolist()) if array.ndim > 1 else pa.array(array)
    table = pa.table(arrays)
    if uri.endswith(".parquet"):
        sink = io.BytesIO()
        pq.write_table(table, sink)
        write_bytes(uri, sink.getvalue())
    else:
        import json

        rows = table.to_pylist()
        write_bytes(uri, "".join(json.dumps(r) + "\n" for r in rows).encode())
