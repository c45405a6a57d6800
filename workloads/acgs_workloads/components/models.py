"""The torch models of the components: a residual MLP classifier and a small transformer classifier.

Both expose ``gradient_checkpointing`` (recompute blocks in backward via ``torch.utils.checkpoint``).
The transformer uses fused attention (``scaled_dot_product_attention``) and :class:`WinaLinear` layers, so
WINA sparse activation can be switched on without changing the weights or their names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from acgs_workloads.contract import ModelSpec


class WinaLinear(nn.Linear):
    """A Linear layer with optional WINA sparse activation (training-free).

    With ``keep`` set (fraction of input features kept), each input row ``x`` keeps the ``k`` features with
    the largest ``|x_i| * ||W[:, i]||_2`` and zeroes the rest. ``mode`` says how the product is computed:

    - ``mask``: zero the dropped features and run the dense matmul (the reference semantics);
    - ``gather``: the same per-row result, reading only the kept weight columns (``embedding_bag`` over the
      transposed weight), so the work per row shrinks to ``k`` columns;
    - ``shared``: one selection for the whole batch (scores summed over rows) and a dense matmul over the
      gathered ``[out, k]`` weight: a smaller GEMM, the variant that pays off for batches on CPUs/GPUs.
    """

    keep: float | None
    mode: str

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.keep = None
        self.mode = "mask"
        self._cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    def _norms_and_transpose(self) -> tuple[torch.Tensor, torch.Tensor]:
        version = self.weight._version
        if self._cache is None or self._cache[0] != version or self._cache[1].device != self.weight.device:
            with torch.no_grad():
                norms = self.weight.detach().norm(dim=0)
                transposed = self.weight.detach().t().contiguous()
            self._cache = (version, norms, transposed)
        return self._cache[1], self._cache[2]

    def k(self) -> int:
        """How many input features a row keeps."""
        if self.keep is None:
            return self.in_features
        return max(1, min(self.in_features, round(self.keep * self.in_features)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.keep is None or self.k() >= self.in_features:
            return super().forward(x)
        norms, transposed = self._norms_and_transpose()
        k = self.k()
        if self.mode == "shared":  # sum over rows of |x_i| * ||W[:, i]|| = ||W[:, i]|| * sum of |x_i|
            totals = x.detach().abs().reshape(-1, self.in_features).sum(dim=0) * norms.to(x.dtype)
            shared = totals.topk(k, sorted=False).indices
            return F.linear(x.index_select(-1, shared), self.weight.index_select(1, shared), self.bias)
        index = (x.detach().abs() * norms.to(x.dtype)).topk(k, dim=-1, sorted=False).indices
        if self.mode == "mask":
            mask = torch.zeros_like(x).scatter_(-1, index, 1.0)
            return F.linear(x * mask, self.weight, self.bias)
        flat_x = x.reshape(-1, self.in_features)
        flat_index = index.reshape(-1, k)
        weights = flat_x.gather(1, flat_index)
        out = F.embedding_bag(flat_index, transposed.to(x.dtype), per_sample_weights=weights, mode="sum")
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)


WINA_MODES = ("mask", "gather", "shared")


def set_wina(model: nn.Module, sparsity: float, mode: str = "mask") -> int:
    """Switch WINA on for every :class:`WinaLinear` in ``model`` (``sparsity`` = share zeroed); return the count."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if mode not in WINA_MODES:
        raise ValueError(f"WINA mode must be one of {WINA_MODES}, got {mode!r}")
    layers = [m for m in model.modules() if isinstance(m, WinaLinear)]
    for layer in layers:
        layer.keep = None if sparsity == 0.0 else 1.0 - sparsity
        layer.mode = mode
    return len(layers)


class MLPClassifier(nn.Module):
    """Input projection, ``layers`` residual (LayerNorm, Linear, GELU, Dropout) blocks, output head."""

    def __init__(self, features: int, classes: int, spec: ModelSpec) -> None:
        super().__init__()
        self.gradient_checkpointing = False
        self.inp = nn.Linear(features, spec.hidden_size)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(spec.hidden_size),
                nn.Linear(spec.hidden_size, spec.hidden_size),
                nn.GELU(),
                nn.Dropout(spec.dropout),
            )
            for _ in range(spec.layers)
        )
        self.norm = nn.LayerNorm(spec.hidden_size)
        self.out = nn.Linear(spec.hidden_size, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                h = h + checkpoint(block, h, use_reentrant=False)
            else:
                h = h + block(h)
        return self.out(self.norm(h))


class TransformerBlock(nn.Module):
    """Pre-norm block: fused multi-head self-attention, then a GELU MLP (hidden x4).

    Dropout acts on the two residual branches, not on the attention probabilities: a dropout mask over the
    [batch, heads, length, length] weights rules out the fused CPU kernel and, measured on one CPU thread, made
    a training step 1.6 times slower.
    """

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = WinaLinear(hidden, 3 * hidden)
        self.proj = WinaLinear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.fc1 = WinaLinear(hidden, 4 * hidden)
        self.fc2 = WinaLinear(4 * hidden, hidden)
        self.drop = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, hidden // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if pad is None else (~pad)[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(batch, length, hidden))

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attention(self.norm1(x), pad))
        return x + self.drop(self.mlp(self.norm2(x)))


def group_probabilities(logits: torch.Tensor, groups: tuple[int, ...]) -> torch.Tensor:
    """Fact logits as probabilities: sigmoid for a group of size 1 (a yes/no fact), softmax over larger groups."""
    parts, start = [], 0
    for size in groups:
        chunk = logits[:, start : start + size]
        parts.append(torch.sigmoid(chunk) if size == 1 else torch.softmax(chunk, dim=-1))
        start += size
    return torch.cat(parts, dim=-1)


class WordVectorTable(nn.Module):
    """Pretrained word vectors as buffers (so an artifact carries them): ``hashes`` sorted, ``vectors`` in that
    order (:mod:`~acgs_workloads.components.vectors`). Empty until :meth:`fill` or a state dict fills it; a
    state dict's table replaces whatever size this one had."""

    hashes: torch.Tensor
    vectors: torch.Tensor

    def __init__(self, dimensions: int) -> None:
        super().__init__()
        self.register_buffer("hashes", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("vectors", torch.zeros(0, dimensions, dtype=torch.float16))

    def fill(self, hashes: np.ndarray, vectors: np.ndarray) -> None:
        device = self.hashes.device
        self.hashes = torch.as_tensor(hashes, dtype=torch.int64, device=device)
        self.vectors = torch.as_tensor(vectors, dtype=torch.float16, device=device)

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        for name in ("hashes", "vectors"):
            incoming = state_dict.get(prefix + name)
            if incoming is not None:
                setattr(self, name, torch.empty_like(incoming, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The vectors of word hashes ``keys`` [...] as float32 [..., dimensions], and which were found."""
        if self.hashes.numel() == 0:
            missing = torch.zeros_like(keys, dtype=torch.bool)
            return keys.new_zeros((*keys.shape, self.vectors.shape[1]), dtype=torch.float32), missing
        at = torch.searchsorted(self.hashes, keys).clamp(max=self.hashes.numel() - 1)
        found = (self.hashes[at] == keys) & (keys != 0)
        return self.vectors[at].float() * found.unsqueeze(-1), found


class ReadsWordVectors(nn.Module):
    """A model with an optional :class:`WordVectorTable` (``words``) that training fills."""

    def __init__(self) -> None:
        super().__init__()
        self.words: WordVectorTable | None = None

    def set_word_vectors(self, hashes: np.ndarray, vectors: np.ndarray) -> None:
        """Copy the pretrained table into the model (training; a loaded state dict brings its own)."""
        if self.words is None:
            raise ValueError(f"this {type(self).__name__} was built without word vectors")
        self.words.fill(hashes, vectors)


class TransformerClassifier(ReadsWordVectors):
    """Token + position embeddings, ``layers`` transformer blocks, classification from the first token.

    Trailing columns that are padding in every row of a batch are cut before the blocks (absolute positions
    are unchanged), so a batch of short requests costs what its longest request costs, not ``sequenceLength``.
    With ``fact_groups`` (as :class:`TextClassifier`) the head returns the facts read from the first token and
    the decision is a small MLP over the facts' probabilities: ``forward`` returns ``classes + facts`` logits.
    """

    wina_sparsity: float = 0.0  # the WINA sparsity its component serves it at (wina-optimization)

    def __init__(self, vocab: int, classes: int, spec: ModelSpec, pad_id: int = 0,
                 fact_groups: tuple[int, ...] | None = None, word_dimensions: int = 0) -> None:
        super().__init__()
        if spec.hidden_size % spec.heads:
            raise ValueError("model.hiddenSize must be a multiple of model.heads")
        self.gradient_checkpointing = False
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab, spec.hidden_size)
        # with word vectors the input is [token ids | word keys at the same positions]; a word's projected
        # pretrained vector is added to its token embedding
        if word_dimensions:
            self.words = WordVectorTable(word_dimensions)
            self.word_projection = nn.Linear(word_dimensions, spec.hidden_size)
            nn.init.normal_(self.word_projection.weight, std=0.02)  # at the scale of the token embeddings
            nn.init.zeros_(self.word_projection.bias)
        self.position = nn.Embedding(spec.sequence_length, spec.hidden_size)
        nn.init.normal_(self.embed.weight, std=0.02)  # a word never seen in training stays near zero
        nn.init.normal_(self.position.weight, std=0.02)
        self.blocks = nn.ModuleList(
            TransformerBlock(spec.hidden_size, spec.heads, spec.dropout) for _ in range(spec.layers)
        )
        self.norm = nn.LayerNorm(spec.hidden_size)
        self.fact_groups = fact_groups
        facts = sum(fact_groups) if fact_groups else 0
        self.head = nn.Linear(spec.hidden_size, facts or classes)
        self.decide: nn.Module | None = None
        if fact_groups:
            self.decide = nn.Sequential(nn.Linear(facts, spec.hidden_size), nn.GELU(),
                                        nn.Linear(spec.hidden_size, spec.hidden_size), nn.GELU(),
                                        nn.Linear(spec.hidden_size, classes))

    def embedded(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token + position embeddings [batch, length, hidden] with the trailing columns that are padding in
        every row cut, and the padding mask of what is left (None when nothing is padding)."""
        keys, words = None, self.words
        if words is not None:
            tokens, keys = tokens[:, : tokens.shape[1] // 2], tokens[:, tokens.shape[1] // 2 :]
        used = tokens != self.pad_id
        length = int(used.any(dim=0).nonzero().max()) + 1 if bool(used.any()) else 1
        tokens, used = tokens[:, :length], used[:, :length]
        h = self.embed(tokens) + self.position(torch.arange(length, device=tokens.device))[None]
        if words is not None and keys is not None:
            vectors, found = words(keys[:, :length].contiguous())
            vectors = F.normalize(vectors, dim=-1)  # direction only: the meaning, not the word's frequency
            h = h + self.word_projection(vectors.to(h.dtype)) * found.unsqueeze(-1).to(h.dtype)
        return h, None if bool(used.all()) else ~used

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """The normalised first-token state [batch, hidden]."""
        h, pad_arg = self.embedded(tokens)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training:
                h = checkpoint(block, h, pad_arg, use_reentrant=False)
            else:
                h = block(h, pad_arg)
        return self.norm(h[:, 0])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out = self.head(self.encode(tokens))
        if self.decide is None or self.fact_groups is None:
            return out
        return torch.cat([self.decide(group_probabilities(out, self.fact_groups)), out], dim=-1)


class TextClassifier(ReadsWordVectors):
    """A bag of hashed n-grams (sum of their embeddings over the square root of their count) feeding a residual
    MLP. With ``word_dimensions`` (and ``ngrams``, the n-gram columns of the input) it also reads each word's
    pretrained vector (:class:`WordVectorTable`), projected and max-pooled, added to the bag.

    ``forward`` returns ``classes + facts`` logits per row: the decision first, then the fact head (what the
    text says about each governance fact). With ``fact_groups`` (the fact head's groups: size 1 is a yes/no
    fact, larger sizes are one-of-n) the decision is read **from the facts only**: a small MLP over the
    facts' probabilities, so a decision always rests on facts the model can report, and a text whose words
    say nothing about any fact is judged on the defaults. Without it the decision head reads the text too.
    """

    def __init__(self, buckets: int, classes: int, facts: int, spec: ModelSpec,
                 fact_groups: tuple[int, ...] | None = None, ngrams: int | None = None,
                 word_dimensions: int = 0) -> None:
        super().__init__()
        self.embed = nn.EmbeddingBag(buckets, spec.hidden_size, mode="sum", padding_idx=0)
        nn.init.zeros_(self.embed.weight)  # an n-gram never seen in training says nothing (not a random vector)
        # with word vectors: the input's first ``ngrams`` columns are n-gram ids, the rest word hashes, and each
        # word's pretrained vector is projected and max-pooled (one word can say a fact however long the text)
        self.ngrams = ngrams
        if word_dimensions:
            self.words = WordVectorTable(word_dimensions)
            self.word_projection = nn.Sequential(nn.Linear(word_dimensions, spec.hidden_size), nn.ReLU())
        self.fact_groups = fact_groups
        if fact_groups is None:
            self.body = MLPClassifier(spec.hidden_size, classes + facts, spec)
            self.decide: nn.Module | None = None
        else:
            if sum(fact_groups) != facts:
                raise ValueError(f"fact groups {fact_groups} do not add up to {facts} fact logits")
            self.body = MLPClassifier(spec.hidden_size, facts, spec)
            width = 2 * spec.hidden_size  # the decision rule is a table over every combination of facts
            self.decide = nn.Sequential(nn.Linear(facts, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                                        nn.Linear(width, classes))

    @property
    def gradient_checkpointing(self) -> bool:
        return self.body.gradient_checkpointing

    @gradient_checkpointing.setter
    def gradient_checkpointing(self, value: bool) -> None:
        self.body.gradient_checkpointing = value

    def fact_probabilities(self, facts: torch.Tensor) -> torch.Tensor:
        assert self.fact_groups is not None
        parts, start = [], 0
        for size in self.fact_groups:
            chunk = facts[:, start : start + size]
            parts.append(torch.sigmoid(chunk) if size == 1 else torch.softmax(chunk, dim=-1))
            start += size
        return torch.cat(parts, dim=-1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        keys = None
        if self.ngrams is not None:
            ids, keys = ids[:, : self.ngrams], ids[:, self.ngrams :].contiguous()
        # sum / sqrt(n-grams): unseen words dilute what was read less than a mean would
        count = (ids != 0).sum(dim=1, keepdim=True).clamp(min=1).to(self.embed.weight.dtype)
        h = self.embed(ids) / count.sqrt()
        if self.words is not None and keys is not None and keys.shape[1]:
            vectors, found = self.words(keys)
            projected = self.word_projection(vectors.to(h.dtype)) * found.unsqueeze(-1).to(h.dtype)
            h = h + projected.max(dim=1).values
        out = self.body(h)
        if self.decide is None:
            return out
        return torch.cat([self.decide(self.fact_probabilities(out)), out], dim=-1)
