"""The paper's feed-forward networks for token-pair tasks.

Usage::

    weak = FNN(vocab_size=113, n_classes=113, embed_dim=4, width=16, depth=1, seed=0)
    target = FNN(vocab_size=113, n_classes=113, embed_dim=128, width=512, depth=2, seed=1)
    logits = target(task.x_train)  # (N, 113)

Both operands are looked up in ONE embedding table, the two vectors are concatenated,
then ``depth`` hidden ReLU layers of ``width`` and a linear read-out to the classes.
Bias-free by default, as in the paper. ``activation="square"`` makes every hidden
activation x² instead of ReLU (see :class:`Square`).

Every model exposes its input embedding through Hugging Face's two-method convention,
``get_input_embeddings()`` / ``set_input_embeddings(module)``, which is all
:mod:`groktransfer.transfer` needs; the module set there is called on token ids and
must return vectors of the model's embedding width.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .config import ModelConfig
from .lookup import Embedding
from .scaling import scale_parameters
from .transformer import Transformer


class Square(nn.Module):
    """The activation x ↦ x². Why: a one-hidden-layer network with it learns modular addition
    and multiplication with Fourier features in a few hundred steps or less (Gromov 2023,
    "Grokking modular arithmetic"); docs/weak-stage.md measures it as the weak model."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


ACTIVATIONS = {"relu": nn.ReLU, "square": Square}


def readout(fan_in: int, n_out: int, bias: bool, rank: Optional[int]) -> nn.Module:
    """The FNN's read-out: one dense map, or (``rank`` set) two maps through ``rank`` dimensions.

    The two maps are PyTorch's default Linear inits, both multiplied by 3^(1/4): a product of two
    default draws has entries √3 smaller than a dense default draw (std 1/(3√fan_in) against
    1/√(3·fan_in)), so the factorised read-out starts at the dense one's scale and only its
    parametrisation differs. A weak model with it generalises in about half the steps, but its
    embeddings start multiplication targets less reliably (results/weak-readout/), so no default
    uses it.
    """
    if rank is None:
        return nn.Linear(fan_in, n_out, bias=bias)
    first, second = nn.Linear(fan_in, rank, bias=False), nn.Linear(rank, n_out, bias=bias)
    with torch.no_grad():
        first.weight.mul_(3 ** 0.25)
        second.weight.mul_(3 ** 0.25)
    return nn.Sequential(first, second)


class FNN(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        n_classes: int,
        embed_dim: int = 128,
        width: int = 512,
        depth: int = 2,
        n_inputs: int = 2,
        bias: bool = False,
        init_scale: float = 1.0,
        seed: Optional[int] = None,
        readout_rank: Optional[int] = None,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        ModelConfig(embed_dim=embed_dim, width=width, depth=depth, bias=bias, init_scale=init_scale,
                    readout_rank=readout_rank, activation=activation)
        self.vocab_size, self.n_classes, self.n_inputs = vocab_size, n_classes, n_inputs
        self.embed_dim, self.width, self.depth = embed_dim, width, depth
        self.init_scale = init_scale
        # A private generator state makes construction reproducible without touching the
        # caller's global RNG stream.
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            self.embedding = Embedding(vocab_size, embed_dim)
            layers: list[nn.Module] = []
            fan_in = n_inputs * embed_dim
            for _ in range(depth):
                layers += [nn.Linear(fan_in, width, bias=bias), ACTIVATIONS[activation]()]
                fan_in = width
            layers.append(readout(fan_in, n_classes, bias, readout_rank))
            self.mlp = nn.Sequential(*layers)
        scale_parameters(self, init_scale)

    @classmethod
    def from_config(cls, config: ModelConfig, vocab_size: int, n_classes: int, seed: Optional[int] = None) -> "FNN":
        return cls(
            vocab_size,
            n_classes,
            embed_dim=config.embed_dim,
            width=config.width,
            depth=config.depth,
            bias=config.bias,
            init_scale=config.init_scale,
            seed=seed,
            readout_rank=config.readout_rank,
            activation=config.activation,
        )

    def get_input_embeddings(self) -> nn.Module:
        return self.embedding

    def set_input_embeddings(self, module: nn.Module) -> None:
        self.embedding = module

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        vectors = self.embedding(tokens)  # (N, n_inputs, embed_dim)
        return self.mlp(vectors.flatten(1))


class VectorFNN(nn.Module):
    """An FNN over a vector input (the paper's parity models): ``x·E``, ReLU, ``depth`` hidden
    ReLU layers of ``width``, and the read-out (``activation="square"``: x² in place of each ReLU).

    Integer inputs (bits 0/1) are read as ±1; float inputs (pixels) are used as they are.
    ``E`` (``n_inputs × embed_dim``, the transposed first
    layer) is the model's input embedding: ``get_input_embeddings()`` returns a module whose
    ``weight`` is E, so GrokTransfer transfers the weak model's first layer as A and the
    target computes ``x·A·B``. With two classes the read-out is one number f and the logits
    are ``[-f/2, f/2]``: cross-entropy on them is exactly the logistic loss
    ``log(1 + exp(-y·f))`` with y = ±1, and argmax is the sign of f.
    """

    def __init__(self, n_inputs: int, n_classes: int, embed_dim: int = 128, width: int = 512, depth: int = 2,
                 bias: bool = False, init_scale: float = 1.0, seed: Optional[int] = None,
                 readout_rank: Optional[int] = None, activation: str = "relu") -> None:
        super().__init__()
        ModelConfig(embed_dim=embed_dim, width=width, depth=depth, bias=bias, init_scale=init_scale, vector_input=True,
                    readout_rank=readout_rank, activation=activation)
        self.n_inputs, self.n_classes, self.init_scale = n_inputs, n_classes, init_scale
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            first = nn.Linear(n_inputs, embed_dim, bias=False)  # drawn like a first layer ...
            self.embedding = nn.Embedding(n_inputs, embed_dim)  # ... and held as E = its transpose
            with torch.no_grad():
                self.embedding.weight.copy_(first.weight.T)
            self.activation = ACTIVATIONS[activation]()  # after x·E
            layers: list[nn.Module] = []
            fan_in = embed_dim
            for _ in range(depth):
                layers += [nn.Linear(fan_in, width, bias=bias), ACTIVATIONS[activation]()]
                fan_in = width
            layers.append(readout(fan_in, 1 if n_classes == 2 else n_classes, bias, readout_rank))
            self.mlp = nn.Sequential(*layers)
        scale_parameters(self, init_scale)

    def get_input_embeddings(self) -> nn.Module:
        return self.embedding

    def set_input_embeddings(self, module: nn.Module) -> None:
        self.embedding = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.embedding.weight  # read once: an A·B embedding computes its product on every read
        values = 2.0 * x.to(weight.dtype) - 1.0 if not x.is_floating_point() else x.to(weight.dtype)
        out = self.mlp(self.activation(values @ weight))
        if self.n_classes == 2:
            return torch.cat([-out / 2, out / 2], dim=-1)
        return out


def build_network(
    config: ModelConfig, vocab_size: int, n_classes: int, seed: Optional[int] = None, n_inputs: int = 2
) -> nn.Module:
    """The model a ModelConfig describes: an FNN, or a transformer when ``config.transformer`` is set;
    ``n_inputs`` tokens per sample (2 operands, or a parity task's bits)."""
    if config.vector_input:
        return VectorFNN(n_inputs, n_classes, embed_dim=config.embed_dim, width=config.width, depth=config.depth,
                         bias=config.bias, init_scale=config.init_scale, seed=seed, readout_rank=config.readout_rank,
                         activation=config.activation)
    if config.encoding is not None:
        from .encodings import fixed_encoding

        encoding = fixed_encoding(config.encoding, vocab_size)
        model = FNN(vocab_size, n_classes, embed_dim=encoding.shape[1], width=config.width, depth=config.depth,
                    n_inputs=n_inputs, bias=config.bias, init_scale=config.init_scale, seed=seed,
                    readout_rank=config.readout_rank, activation=config.activation)
        model.embedding.weight.data.copy_(encoding)  # not scaled by init_scale: the encoding is fixed
        model.embedding.weight.requires_grad_(False)
        return model
    if config.transformer is None:
        return FNN(vocab_size, n_classes, embed_dim=config.embed_dim, width=config.width, depth=config.depth,
                   n_inputs=n_inputs, bias=config.bias, init_scale=config.init_scale, seed=seed,
                   readout_rank=config.readout_rank, activation=config.activation)
    t = config.transformer
    return Transformer(
        vocab_size, n_classes, n_layers=t.n_layers, d_model=config.embed_dim, n_heads=t.n_heads, d_head=t.d_head,
        d_mlp=t.d_mlp, style=t.style, input_format=t.input_format, n_inputs=n_inputs, init_scale=config.init_scale,
        seed=seed,
    )


def build_model(stage, task, seed: int) -> nn.Module:
    """A stage's model (``stage.model``, a ModelConfig) for ``task``, on the task's device."""
    return build_network(stage.model, task.vocab_size, task.n_classes, seed=seed, n_inputs=task.n_inputs).to(task.device)


def parameter_count(config, vocab_size: int, n_classes: int, n_inputs: int = 2) -> int:
    """The number of parameters ``build_network(config, ...)`` would create, from the config alone
    (nothing is allocated): what a memory check needs before a model is built."""
    d, w = config.embed_dim, config.width
    if config.transformer is not None:
        t = config.transformer
        pre_norm = t.style == "grokfast"
        inner = t.n_heads * (t.d_head if t.d_head is not None else max(1, d // t.n_heads))
        vocab = vocab_size + (2 if t.input_format == "equation" else 0)
        n_ctx = 4 if t.input_format == "equation" else n_inputs
        block = (d * 3 * inner + inner * d + (3 * inner + d if pre_norm else 0)  # attention
                 + d * t.d_mlp + t.d_mlp + t.d_mlp * d + d  # MLP (always with biases)
                 + (4 * d if pre_norm else 0))  # two LayerNorms
        return vocab * d + n_ctx * d + t.n_layers * block + (2 * d if pre_norm else 0) + d * n_classes + (
            n_classes if pre_norm else 0)
    if config.vector_input:
        fan_in, rows, out = d, n_inputs, 1 if n_classes == 2 else n_classes
    else:
        if config.encoding is not None:  # a fixed encoding's width is its own; a bound: the vocabulary
            d = max(d, vocab_size)
        fan_in, rows, out = n_inputs * d, vocab_size, n_classes
    total = rows * d
    for _ in range(config.depth):
        total += fan_in * w + (w if config.bias else 0)
        fan_in = w
    rank = getattr(config, "readout_rank", None)
    read = fan_in * out if rank is None else fan_in * rank + rank * out
    return total + read + (out if config.bias else 0)


def _linear_chain(mlp: nn.Module) -> Optional[list[nn.Linear]]:
    """The Linear layers of an FNN's ``mlp`` in order, when it is only Linear, its activations and
    nested Sequential modules (anything else: None)."""
    layers: list[nn.Linear] = []
    for module in mlp.modules():
        if isinstance(module, nn.Linear):
            layers.append(module)
        elif not isinstance(module, (nn.Sequential, *ACTIVATIONS.values())):
            return None
    return layers


def fnn_flops(model: nn.Module, rows: int, backward: bool) -> Optional[int]:
    """FLOPs of this package's FNNs (FNN, VectorFNN) on ``rows`` samples, forward and (``backward``)
    the backward of the loss, by the formulas torch's FlopCounterMode applies (2·m·n·k for each
    matrix product; lookups, activations and the loss count nothing); None for any other model.

    Why not FlopCounterMode itself: any Python dispatch mode imports torch._dynamo on first use,
    about a second of every command's start on a small CPU (benchmarks/startup.py).
    tests/test_models.py checks this count against FlopCounterMode's on every kind of FNN the
    package builds.
    """
    from .transfer import FactorizedEmbedding  # transfer imports nothing of models'

    if type(model) not in (FNN, VectorFNN):
        return None
    layers = _linear_chain(model.mlp)
    embedding = model.embedding
    if layers is None:
        return None
    total = 0

    def product(m: int, k: int, n: int, left_needs_grad: bool, right_needs_grad: bool) -> None:
        """(m × k) @ (k × n), and its backward: one product per operand that needs a gradient."""
        nonlocal total
        total += 2 * m * k * n * (1 + backward * (left_needs_grad + right_needs_grad))

    if isinstance(embedding, FactorizedEmbedding):
        (vocab, rank), dim = embedding.A.shape, embedding.B.shape[1]
        product(vocab, rank, dim, embedding.A.requires_grad, embedding.B.requires_grad)
        trains = embedding.A.requires_grad or embedding.B.requires_grad
    elif isinstance(embedding, nn.Embedding):
        vocab, dim = embedding.weight.shape
        trains = embedding.weight.requires_grad
    else:
        return None
    if isinstance(model, VectorFNN):  # values (data) @ E, then the MLP on (rows × dim)
        product(rows, vocab, dim, False, trains)
        width = dim
    else:  # looked-up rows, flattened: (rows × n_inputs·dim)
        width = model.n_inputs * dim
    needs_grad = trains
    for layer in layers:
        if layer.in_features != width:
            return None
        product(rows, layer.in_features, layer.out_features, needs_grad, layer.weight.requires_grad)
        needs_grad = needs_grad or any(p.requires_grad for p in layer.parameters())
        width = layer.out_features
    return total
