"""Decoder-only transformers for token tasks, in the two styles grokking papers use.

Usage::

    model = Transformer(vocab_size=113, n_classes=113, n_layers=2, d_model=128, n_heads=4, d_mlp=512,
                        style="nanda", input_format="pair", seed=0)
    logits = model(task.x_train)        # (N, 113): read at the last position

Styles:

- ``"nanda"`` (Nanda et al. 2023, the paper's Fig. 8): no LayerNorm, causal attention,
  learned positional embeddings, ReLU MLP with biases, attention and unembedding without
  biases.
- ``"grokfast"`` (the GrokFast reference transformer): pre-LayerNorm blocks, GELU MLP, a
  final LayerNorm, biases everywhere.

Input formats (the task always hands over operand pairs ``(a, b)``, shape (N, 2)):

- ``"pair"``: the sequence is the two operand tokens, as in the paper.
- ``"equation"``: the sequence is ``a ∘ b =``, as in the peers' scripts; the vocabulary gets
  two extra tokens, ``∘`` (id ``vocab_size``) and ``=`` (id ``vocab_size + 1``).

Attention is written out (softmax(q·kᵀ/√d + causal mask)·v) rather than calling
``scaled_dot_product_attention``: under ``vmap`` on CUDA, SDPA picks the memory-efficient
kernel, whose backward fails for the batched engine ("LSE is not correctly aligned"), and
the sequences here are 2 to 4 tokens long, where a fused kernel gains nothing.
``init_scale`` multiplies every parameter after PyTorch's default initialisation (the
Omnigrok convention, as for the FNNs). The token embedding is reached through
``get_input_embeddings``/``set_input_embeddings``, so GrokTransfer installs A·B into it
like into an FNN.
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from torch import nn

from .config import ConfigError
from .lookup import Embedding
from .scaling import scale_parameters

Style = Literal["nanda", "grokfast"]
InputFormat = Literal["pair", "equation"]


class Attention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, bias: bool) -> None:
        super().__init__()
        self.n_heads, self.d_head = n_heads, d_head
        self.qkv = nn.Linear(d_model, 3 * n_heads * d_head, bias=bias)
        self.out = nn.Linear(n_heads * d_head, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, _ = x.shape
        q, k, v = self.qkv(x).view(n, t, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4)
        scores = (q @ k.transpose(-2, -1)) * self.d_head**-0.5  # (n, heads, t, t)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        mixed = weights @ v  # (n, heads, t, d_head)
        return self.out(mixed.transpose(1, 2).reshape(n, t, self.n_heads * self.d_head))


class Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, d_head: int, d_mlp: int, style: Style) -> None:
        super().__init__()
        pre_norm = style == "grokfast"
        self.norm_attention = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.attention = Attention(d_model, n_heads, d_head, bias=pre_norm)
        self.norm_mlp = nn.LayerNorm(d_model) if pre_norm else nn.Identity()
        self.mlp = nn.Sequential(
            nn.Linear(d_model, d_mlp), nn.GELU() if pre_norm else nn.ReLU(), nn.Linear(d_mlp, d_model)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm_attention(x))
        return x + self.mlp(self.norm_mlp(x))


class Transformer(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        n_classes: int,
        n_layers: int = 2,
        d_model: int = 128,
        n_heads: int = 4,
        d_head: Optional[int] = None,
        d_mlp: int = 512,
        style: Style = "nanda",
        input_format: InputFormat = "pair",
        n_inputs: int = 2,
        init_scale: float = 1.0,
        seed: Optional[int] = None,
    ) -> None:
        super().__init__()
        if style not in ("nanda", "grokfast"):
            raise ConfigError(f"transformer style: got {style!r}; allowed: nanda, grokfast")
        if input_format not in ("pair", "equation"):
            raise ConfigError(f"transformer input_format: got {input_format!r}; allowed: pair, equation")
        if input_format == "equation" and n_inputs != 2:
            raise ConfigError("transformer input_format 'equation' needs two operands")
        for name, value in (("n_layers", n_layers), ("d_model", d_model), ("n_heads", n_heads), ("d_mlp", d_mlp)):
            if value < 1:
                raise ConfigError(f"transformer {name}: got {value}; must be >= 1")
        self.operand_vocab = vocab_size
        self.vocab_size = vocab_size + (2 if input_format == "equation" else 0)
        self.n_classes, self.n_inputs = n_classes, n_inputs
        self.n_layers, self.d_model, self.n_heads = n_layers, d_model, n_heads
        self.d_head = d_head if d_head is not None else max(1, d_model // n_heads)
        self.d_mlp, self.style, self.input_format, self.init_scale = d_mlp, style, input_format, init_scale
        self.n_ctx = 4 if input_format == "equation" else n_inputs
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.embedding = Embedding(self.vocab_size, d_model)
            self.position = Embedding(self.n_ctx, d_model)
            self.blocks = nn.ModuleList(Block(d_model, n_heads, self.d_head, d_mlp, style) for _ in range(n_layers))
            self.final_norm = nn.LayerNorm(d_model) if style == "grokfast" else nn.Identity()
            self.unembed = nn.Linear(d_model, n_classes, bias=style == "grokfast")
        scale_parameters(self, init_scale)

    def extra_repr(self) -> str:
        # Shown by repr(model), which the batched engine compares: these shape the computation.
        return (f"style={self.style}, input_format={self.input_format}, n_heads={self.n_heads}, "
                f"d_head={self.d_head}, n_ctx={self.n_ctx}")

    def get_input_embeddings(self) -> nn.Module:
        return self.embedding

    def set_input_embeddings(self, module: nn.Module) -> None:
        self.embedding = module

    def sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """The token sequence the model reads: the operands, or ``a ∘ b =``."""
        if self.input_format == "pair":
            return tokens
        n = tokens.shape[0]
        op = torch.full((n, 1), self.operand_vocab, dtype=tokens.dtype, device=tokens.device)
        return torch.cat([tokens[:, :1], op, tokens[:, 1:], op + 1], dim=1)

    def residual(self, tokens: torch.Tensor) -> torch.Tensor:
        """The residual stream after the last block, at every position: (N, T, d_model)."""
        seq = self.sequence(tokens)
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.embedding(seq) + self.position(positions)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.unembed(self.final_norm(self.residual(tokens)[:, -1]))  # logits read at the last position
