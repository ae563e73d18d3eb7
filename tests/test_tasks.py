"""Task labels against a brute-force Python table; splits; validation."""

import re

import pytest
import torch

from groktransfer import ConfigError, ModularTask
from groktransfer.config import OPERATION_NAMES
from groktransfer.config import is_prime

BRUTE = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    # Division by search: the c with c·b ≡ a, found without any inverse formula.
    "div": lambda a, b, p: next(c for c in range(p) if (c * b) % p == a),
    "x^2+y^2": lambda a, b, p: (a * a + b * b) % p,
    "x^2+xy+y^2": lambda a, b, p: (a * a + a * b + b * b) % p,
    "x^3+xy": lambda a, b, p: (a**3 + a * b) % p,
}


def all_pairs(task):
    x = torch.cat([task.x_train, task.x_test]).tolist()
    y = torch.cat([task.y_train, task.y_test]).tolist()
    return {(a, b): label for (a, b), label in zip(x, y)}


@pytest.mark.parametrize("op", OPERATION_NAMES)
@pytest.mark.parametrize("p", [7, 13])
def test_labels_match_brute_force_table(op, p):
    assert set(BRUTE) == set(OPERATION_NAMES)
    table = all_pairs(ModularTask(op, p=p, train_fraction=0.5, data_seed=3))
    expected_pairs = {(a, b) for a in range(p) for b in range(p) if not (op == "div" and b == 0)}
    assert set(table) == expected_pairs
    for (a, b), label in table.items():
        assert label == BRUTE[op](a, b, p), (op, a, b)


def test_custom_operation_is_vectorised_and_reduced_mod_p():
    task = ModularTask(lambda a, b, p: a * 10 + b, p=11, train_fraction=0.3)
    table = all_pairs(task)
    assert all(label == (a * 10 + b) % 11 for (a, b), label in table.items())
    assert len(table) == 121


def test_split_sizes_disjoint_and_deterministic():
    task = ModularTask("add", p=31, train_fraction=0.25, data_seed=5)
    n = 31 * 31
    assert len(task.x_train) == round(0.25 * n) and len(task.x_train) + len(task.x_test) == n
    train = {tuple(r) for r in task.x_train.tolist()}
    test = {tuple(r) for r in task.x_test.tolist()}
    assert not train & test and len(train | test) == n
    again = ModularTask("add", p=31, train_fraction=0.25, data_seed=5)
    assert torch.equal(again.x_train, task.x_train) and torch.equal(again.y_test, task.y_test)
    other = ModularTask("add", p=31, train_fraction=0.25, data_seed=6)
    assert not torch.equal(other.x_train, task.x_train)
    assert task.vocab_size == task.n_classes == 31


def test_split_does_not_depend_on_global_rng():
    torch.manual_seed(0)
    a = ModularTask("mul", p=17, data_seed=1)
    torch.manual_seed(123)
    b = ModularTask("mul", p=17, data_seed=1)
    assert torch.equal(a.x_train, b.x_train)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"p": 1}, "p"),
        ({"op": "div", "p": 15}, "p"),
        ({"train_fraction": 0.0}, "train_fraction"),
        ({"train_fraction": 1.0}, "train_fraction"),
        ({"train_fraction": -0.2}, "train_fraction"),
        ({"op": "pow"}, "op"),
        ({"p": 2, "train_fraction": 0.01}, "train_fraction"),
    ],
)
def test_bad_task_arguments_are_refused(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        ModularTask(**kwargs)


def test_is_prime():
    assert [n for n in range(30) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]


def test_sparse_parity_labels_are_the_xor_of_the_relevant_bits():
    from groktransfer.tasks import SparseParityTask

    task = SparseParityTask(n_bits=12, k=3, n_train=200, n_test=100, data_seed=4)
    assert task.x_train.shape == (200, 12) and task.x_test.shape == (100, 12)
    assert set(task.x_train.unique().tolist()) <= {0, 1} and task.vocab_size == 2 and task.n_inputs == 12
    for x, y in zip(task.x_train.tolist() + task.x_test.tolist(), task.y_train.tolist() + task.y_test.tolist()):
        expected = 0
        for i in task.relevant.tolist():
            expected ^= x[i]
        assert y == expected
    again = SparseParityTask(n_bits=12, k=3, n_train=200, n_test=100, data_seed=4)
    assert torch.equal(again.x_train, task.x_train) and torch.equal(again.relevant, task.relevant)
    other = SparseParityTask(n_bits=12, k=3, n_train=200, n_test=100, data_seed=5)
    assert not torch.equal(other.x_train, task.x_train)


def _write_idx(path, array):
    import gzip

    import numpy as np

    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    (gzip.open if str(path).endswith(".gz") else open)(path, "wb").write(data)


def test_digits_task_reads_mnist_idx_files_in_the_torchvision_layout(tmp_path):
    import numpy as np

    from groktransfer.tasks import DigitsTask

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 30), ("t10k", 20))}
    labels = {s: rng.integers(0, 10, n) for s, n in (("train", 30), ("t10k", 20))}
    for s in ("train", "t10k"):
        _write_idx(raw / f"{s}-images-idx3-ubyte.gz", images[s])
        _write_idx(raw / f"{s}-labels-idx1-ubyte", labels[s])
    task = DigitsTask(n_train=10, n_test=5, data_seed=1, data_dir=str(tmp_path))
    assert task.x_train.shape == (10, 784) and task.x_test.shape == (5, 784) and "MNIST from" in repr(task)
    # Every drawn training image is one of the file's, scaled to [0, 1], with its own label.
    flat = torch.tensor(images["train"].reshape(30, 784), dtype=torch.float32) / 255
    for x, y in zip(task.x_train, task.y_train):
        row = int((flat == x).all(dim=1).nonzero()[0, 0])
        assert int(labels["train"][row]) == int(y)
    with pytest.raises(ConfigError, match="asked for 50 training images, the data has 30"):
        DigitsTask(n_train=50, n_test=5, data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="holds no MNIST IDX files"):
        DigitsTask(data_dir=str(tmp_path / "MNIST"))


@pytest.mark.parametrize("damage, message", [
    ("label 12", "holds a label 12; digits are 0-9"),
    ("not gzip", "cannot be read"),
    ("gzip bomb", "unpacks to more than"),
    ("fewer labels", "20 images in t10k-images-idx3-ubyte.gz but 19 labels"),
    ("14 x 14 images", "holds images of shape (14, 14); MNIST's are 28 × 28"),
    ("truncated", "is truncated"),
])
def test_damaged_mnist_files_are_refused_with_one_line_naming_the_file(tmp_path, monkeypatch, damage, message):
    import gzip

    import numpy as np

    from groktransfer import tasks
    from groktransfer.tasks import DigitsTask

    rng = np.random.default_rng(0)
    images = {s: rng.integers(0, 256, (n, 28, 28)) for s, n in (("train", 30), ("t10k", 20))}
    labels = {s: rng.integers(0, 10, n) for s, n in (("train", 30), ("t10k", 20))}
    if damage == "label 12":
        labels["train"][3] = 12
    if damage == "fewer labels":
        labels["t10k"] = labels["t10k"][:19]
    if damage == "14 x 14 images":
        images["train"] = rng.integers(0, 256, (30, 14, 14))
    for s in ("train", "t10k"):
        _write_idx(tmp_path / f"{s}-images-idx3-ubyte.gz", images[s])
        _write_idx(tmp_path / f"{s}-labels-idx1-ubyte", labels[s])
    if damage == "not gzip":
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"plain bytes, not gzip" * 10)
    if damage == "gzip bomb":
        monkeypatch.setattr(tasks, "MAX_IDX_BYTES", 10_000)  # the real cap, 200 MB, is too big for a test
        with gzip.open(tmp_path / "train-images-idx3-ubyte.gz", "wb") as handle:
            handle.write(bytes(50_000))
    if damage == "truncated":
        path = tmp_path / "train-labels-idx1-ubyte"
        path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ConfigError, match=re.escape(message)) as refused:
        DigitsTask(n_train=10, n_test=5, data_dir=str(tmp_path))
    assert "\n" not in str(refused.value) and "ubyte" in str(refused.value)


def test_without_a_folder_the_digits_are_scikit_learns_and_say_so():
    from groktransfer.tasks import DigitsTask

    task = DigitsTask(n_train=200, n_test=400, data_seed=0)
    assert task.x_train.shape == (200, 64) and task.n_classes == 10 and "scikit-learn" in repr(task)
    assert 0.0 <= float(task.x_train.min()) and float(task.x_train.max()) <= 1.0
    both = torch.cat([task.x_train, task.x_test])
    assert len({tuple(row.tolist()) for row in both}) > 590  # drawn without replacement (a few digits repeat exactly)
