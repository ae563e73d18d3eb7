import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Tests compare exact numbers; keep the thread count stable across machines.
    torch.set_num_threads(2)
    yield
