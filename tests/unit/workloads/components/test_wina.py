"""WINA: masked and gathered products agree, sparsity 0 is dense, and sparsity means what it says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acgs_workloads.components.models import TransformerClassifier, WinaLinear, set_wina
from acgs_workloads.components.wina import accuracy_vs_sparsity, block_inputs, mlp_speedup
from acgs_workloads.contract import ModelSpec

pytestmark = pytest.mark.unit


@pytest.fixture
def layer() -> WinaLinear:
    torch.manual_seed(0)
    return WinaLinear(32, 12)


def test_sparsity_zero_equals_dense(layer: WinaLinear) -> None:
    x = torch.randn(4, 5, 32)
    dense = torch.nn.functional.linear(x, layer.weight, layer.bias)
    set_wina(layer, 0.0, "gather")
    torch.testing.assert_close(layer(x), dense)


@pytest.mark.parametrize("sparsity", [0.25, 0.5, 0.75])
def test_masked_equals_gathered(layer: WinaLinear, sparsity: float) -> None:
    x = torch.randn(3, 7, 32)
    set_wina(layer, sparsity, "mask")
    masked = layer(x)
    set_wina(layer, sparsity, "gather")
    torch.testing.assert_close(layer(x), masked, rtol=1e-5, atol=1e-5)


def test_selection_is_weight_informed(layer: WinaLinear) -> None:
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[:, 0] = 10.0  # column 0 has a large norm, the input there is small
        layer.weight[:, 1] = 0.01
        layer.bias.zero_()
    x = torch.zeros(1, 32)
    x[0, 0], x[0, 1] = 0.5, 5.0  # |x| alone would keep feature 1; |x| * ||W[:, i]|| keeps feature 0
    layer.keep = 1 / 32
    layer.mode = "mask"
    assert layer.k() == 1
    torch.testing.assert_close(layer(x), torch.full((1, 12), 5.0))


def test_shared_mode_keeps_k_columns_for_the_batch(layer: WinaLinear) -> None:
    x = torch.randn(6, 32)
    set_wina(layer, 0.5, "shared")
    scores = (x.abs() * layer.weight.norm(dim=0)).sum(dim=0)
    keep = scores.topk(16).indices
    mask = torch.zeros(32)
    mask[keep] = 1
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x * mask, layer.weight, layer.bias))


def test_model_level_wina_and_measurements() -> None:
    torch.manual_seed(0)
    spec = ModelSpec(hidden_size=16, layers=1, heads=2, sequence_length=24, dropout=0.0)
    model = TransformerClassifier(128, 4, spec).eval()
    tokens = torch.randint(1, 128, (32, 24))
    dense = model(tokens)
    assert set_wina(model, 0.0) == 4
    torch.testing.assert_close(model(tokens), dense)
    set_wina(model, 0.5, "mask")
    masked = model(tokens)
    set_wina(model, 0.5, "gather")
    torch.testing.assert_close(model(tokens), masked, rtol=1e-4, atol=1e-4)
    set_wina(model, 0.0)
    labels = dense.argmax(dim=1).numpy()
    acc = accuracy_vs_sparsity(model, tokens.numpy(), labels)
    assert acc["0"] == 1.0 and set(acc) == {"0", "0.25", "0.5", "0.75"}
    speed = mlp_speedup(model.blocks[0], torch.randn(64, 16), repeats=5)  # type: ignore[arg-type]
    assert set(speed) == {"0.25", "0.5", "0.75"} and all(v["speedup"] > 0 for v in speed.values())
    with pytest.raises(ValueError):
        set_wina(model, 1.0)


def test_padding_is_cut_and_masked_and_facts_decide() -> None:
    torch.manual_seed(0)
    spec = ModelSpec(hidden_size=16, layers=2, heads=2, sequence_length=32, dropout=0.0)
    model = TransformerClassifier(128, 4, spec, fact_groups=(1, 3, 4)).eval()
    tokens = torch.randint(2, 128, (6, 32))
    tokens[:, 0] = 1
    tokens[:3, 10:] = 0  # padding: three short rows
    tokens[3:, 20:] = 0
    out = model(tokens)
    assert out.shape == (6, 4 + 8)
    # the trailing all-padding columns change nothing, and neither does what sits behind the padding mask
    torch.testing.assert_close(model(tokens[:, :20]), out)
    alone = model(tokens[:3, :10])
    torch.testing.assert_close(alone, out[:3], rtol=1e-5, atol=1e-5)
    hidden = block_inputs(model, tokens.numpy())
    assert hidden.shape == (3 * 10 + 3 * 20, 16)  # real tokens only
    labels = out[:, :4].argmax(dim=1).numpy()
    assert accuracy_vs_sparsity(model, tokens.numpy(), labels, (0.0,), classes=4) == {"0": 1.0}


def test_a_per_token_sweep_keeps_each_request_with_its_label() -> None:
    # the sweep batches requests shortest first; each answer must still be scored against its own label
    torch.manual_seed(0)
    spec = ModelSpec(hidden_size=16, layers=1, heads=2, sequence_length=24, dropout=0.0)
    model = TransformerClassifier(128, 4, spec).eval()
    tokens = torch.randint(2, 128, (40, 24))
    tokens[:, 0] = 1
    for row in range(40):
        tokens[row, 4 + (row * 7) % 20 :] = 0  # lengths 4 .. 23, out of order
    set_wina(model, 0.5, "mask")
    with torch.no_grad():
        labels = np.array([int(model(tokens[row : row + 1]).argmax()) for row in range(40)])
    set_wina(model, 0.0)
    assert accuracy_vs_sparsity(model, tokens.numpy(), labels, (0.5,), "mask") == {"0.5": 1.0}
    shuffled = np.roll(labels, 1)
    assert accuracy_vs_sparsity(model, tokens.numpy(), shuffled, (0.5,), "mask")["0.5"] < 1.0
