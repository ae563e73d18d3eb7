"""Lightning callbacks: a method run by Lightning equals gt.train's; grokking metrics from its validation."""

import copy
import json
import logging

import pytest
import torch

import groktransfer as gt
from groktransfer.config import GrokFastConfig, MethodsConfig, TaskConfig, TrainConfig
from groktransfer.methods import build_hooks

lightning = pytest.importorskip("lightning")
from groktransfer.integrations.lightning import GrokkingMetricsCallback, MethodsCallback  # noqa: E402

logging.getLogger("lightning").setLevel(logging.ERROR)
logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class OneBatch:
    """An iterable of one (x, y) batch: the whole set, as the paper trains."""

    def __init__(self, x, y):
        self.batch = (x, y)

    def __iter__(self):
        return iter([self.batch])

    def __len__(self):
        return 1


class FullBatch(lightning.LightningModule):
    """The task's whole training set as one batch; validation reports train and test accuracy."""

    def __init__(self, model, task, lr=1e-2, weight_decay=0.5):
        super().__init__()
        self.model, self.task, self.lr, self.weight_decay = model, task, lr, weight_decay

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.model(x), y)

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        self.log("train_acc" if dataloader_idx == 0 else "test_acc", (self.model(x).argmax(-1) == y).float().mean(),
                 add_dataloader_idx=False)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def train_dataloader(self):
        return OneBatch(self.task.x_train, self.task.y_train)

    def val_dataloader(self):
        return [OneBatch(self.task.x_train, self.task.y_train), OneBatch(self.task.x_test, self.task.y_test)]


def trainer(tmp_path, steps, callbacks, every=None):
    return lightning.Trainer(max_steps=steps, callbacks=callbacks, default_root_dir=str(tmp_path), logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             accelerator="cpu", devices=1, precision="64-true",
                             limit_val_batches=None if every else 0, check_val_every_n_epoch=every or 1,
                             num_sanity_val_steps=0)


def test_a_method_run_by_lightning_equals_gt_train(tmp_path):
    task = gt.ModularTask.from_config(TaskConfig(op="add", p=11, train_fraction=0.5))
    model = gt.FNN(11, 11, embed_dim=6, width=16, depth=1, seed=0).double()
    reference = copy.deepcopy(model)
    config = MethodsConfig(grokfast=GrokFastConfig(filter="ema", alpha=0.9, lamb=2.0), orthograd=True)
    gt.train(reference, task, TrainConfig(lr=1e-2, weight_decay=0.5, max_steps=20, stop_at_test_acc=None,
                                          dtype="float64", diagnostics=False), hooks=build_hooks(reference, config))
    callback = MethodsCallback("grokfast-ema+orthograd", alpha=0.9, lamb=2.0)
    trainer(tmp_path, 20, [callback]).fit(FullBatch(model, task))
    assert callback.step == 20
    for (name, p), (_, q) in zip(reference.named_parameters(), model.named_parameters()):
        torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-9, msg=name)


def test_grokking_metrics_from_lightnings_validation(tmp_path):
    task = gt.ModularTask.from_config(TaskConfig(op="add", p=11, train_fraction=0.6))
    model = gt.FNN(11, 11, embed_dim=16, width=64, depth=1, seed=0)
    metrics = GrokkingMetricsCallback()
    trainer(tmp_path, 300, [metrics], every=5).fit(FullBatch(model, task, lr=3e-3, weight_decay=1.0))
    summary = json.loads((tmp_path / "grokking.json").read_text())
    assert summary == json.loads(json.dumps(metrics.summary))
    assert [r["step"] for r in summary["evaluations"]][:2] == [5, 10]
    assert summary["train_acc_95_step"] is not None and summary["final_train_acc"] >= 0.95
