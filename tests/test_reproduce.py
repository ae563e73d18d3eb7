"""Reproductions that run experiments of their own: the Fig. 7 weak-checkpoint sweep."""

import pytest


def test_spearman_matches_a_hand_computed_value():
    from groktransfer.reproduce import _spearman

    assert _spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert _spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks x: 0,1,2,3; y (ties averaged): 0.5,0.5,2,3 -> Pearson of ranks = 0.948683...
    assert _spearman([1, 2, 3, 4], [5, 5, 6, 7]) == pytest.approx(0.9486832980505138)


def test_reproduce_fig7_starts_one_target_per_weak_checkpoint(tmp_path):
    from groktransfer.reproduce import reproduce

    record = reproduce("fig7", tmp_path / "fig7", overrides=[
        "preset=demo", "checkpoints=[10, 20, 30]", "device=cpu",
        "preset_overrides=['task.p=11', 'target.train.max_steps=5', 'weak.model.width=8', 'target.model.width=16']"])
    assert [r["weak_step"] for r in record["measured"]["runs"]] == [10, 20, 30]
    assert (tmp_path / "fig7" / "fig7.png").is_file()
    assert len(list((tmp_path / "fig7" / "weak").glob("step*.safetensors"))) == 3


def test_reproduce_fig15_runs_groktransfer_and_its_three_controls(tmp_path):
    import yaml

    from groktransfer.reproduce import reproduce

    record = reproduce("fig15", tmp_path / "fig15", overrides=[
        "preset=demo", "device=cpu",
        "preset_overrides=['task.p=11', 'weak.train.max_steps=20', 'target.train.max_steps=5', "
        "'scratch.train.max_steps=5', 'weak.model.width=8', 'target.model.width=16', 'scratch.model.width=16']"])
    assert list(record["measured"]["runs"]) == ["groktransfer", "random A·B", "A·B merged at step 100", "d_W = d_T",
                                               "from scratch"]
    configs = {p.parent.name: yaml.safe_load(p.read_text()) for p in (tmp_path / "fig15" / "runs").glob("*/config.yaml")}
    assert configs["random_AB"]["transfer"]["a_init"] == "random"
    assert configs["AB_merged_at_step_100"]["transfer"]["merge_at_step"] == 100
    assert configs["d_W_eq_d_T"]["weak"]["model"]["embed_dim"] == configs["d_W_eq_d_T"]["target"]["model"]["embed_dim"]
    assert configs["groktransfer"]["scratch"] is not None and configs["random_AB"]["scratch"] is None
