import pytest

import groktransfer  # noqa: F401  (first: its OpenMP setting must precede torch's loading)
import torch


@pytest.fixture(autouse=True)
def _deterministic_threads():
    # Tests compare exact numbers; keep the thread count stable across machines.
    torch.set_num_threads(2)
    yield


# The slow layer: tests that train real runs end to end (a demo, kills and resumes, sweeps on
# Ray/Submitit, the docs' examples), each several seconds or more on 2 cores. Everything else is
# the fast layer, for a contributor's inner loop:  python3 -m pytest -q -m "not slow"
# (the whole suite, as CI runs it:  python3 -m pytest -q). A test that grows slow joins this list.
SLOW_TESTS = {
    "tests/test_scripts.py::test_gpu_benchmarks_dry_run_writes_every_part",
    "tests/test_scripts.py::test_gpu_transformer_claims_dry_run_writes_every_claim",
    "tests/test_scripts.py::test_paper_scale_study_smoke_writes_its_table",
    "tests/test_executors.py::test_a_task_that_keeps_failing_is_reported_and_the_others_are_kept",
    "tests/test_weak_stage.py::test_a_sweep_picks_the_candidates_run_experiment_picks",
    "tests/test_training.py::test_a_ctrl_c_inside_run_experiment_reaches_the_caller",
    "tests/test_cli.py::test_entry_point_exit_code_and_no_traceback",
    "tests/test_cli.py::test_a_closed_pipe_ends_quietly",
    "tests/test_reproduce.py::test_reproduce_fig7_starts_one_target_per_weak_checkpoint",
    "tests/test_reproduce.py::test_reproduce_fig15_runs_groktransfer_and_its_three_controls",
    "tests/test_reproduce.py::test_reproduce_fig3_logs_the_entk_of_each_encoding",
    "tests/test_docs.py::test_the_docs_site_builds_strictly_and_every_link_and_image_resolves_in_it",
    "tests/test_docs.py::test_site_builds_strictly",
    "tests/test_weak_stage.py::test_each_candidate_trains_as_it_would_alone",
    "tests/test_weak_stage.py::test_the_default_x2_weak_model_generalises_in_fewer_steps_than_relu",
    "tests/test_checkpoint.py::test_a_file_size_limit_is_an_oserror_naming_the_file_and_leaves_nothing",
    "tests/test_cli.py::test_demo_removes_grokking_and_the_target_reruns_from_the_saved_embedding",
    "tests/test_cli.py::test_inspect_weak_names_a_damaged_summary_instead_of_a_traceback",
    "tests/test_cli.py::test_resume_plot_and_inspect_find_the_run_inside_a_reproduction",
    "tests/test_cli.py::test_run_writes_every_record_and_plot_redraws",
    "tests/test_compare.py::test_a_damaged_or_foreign_optuna_study_is_refused_with_one_line",
    "tests/test_compare.py::test_a_diverging_run_does_not_stop_the_sweep",
    "tests/test_compare.py::test_compare_end_to_end",
    "tests/test_compare.py::test_optuna_never_trains_a_configuration_twice_when_the_space_is_smaller_than_asked",
    "tests/test_compare.py::test_tune_end_to_end_and_compare_reads_its_result",
    "tests/test_compare.py::test_tune_with_defaults_tries_each_methods_own_setting_first",
    "tests/test_compare.py::test_tune_with_optuna_keeps_the_budget_and_continues_its_study",
    "tests/test_compiling.py::test_compiled_single_run_and_batch_equal_the_eager_runs",
    "tests/test_docs.py::test_python_blocks_run",
    "tests/test_encodings.py::test_reproduce_fig2_runs_every_encoding_on_both_operations",
    "tests/test_executors.py::test_a_worker_killed_mid_task_is_retried_and_the_result_is_unchanged",
    "tests/test_executors.py::test_compare_on_a_local_ray_cluster_equals_the_local_executor",
    "tests/test_executors.py::test_compare_through_submitits_local_executor_equals_the_local_executor",
    "tests/test_executors.py::test_a_reproduction_runs_its_sweep_on_the_executor_it_is_given",
    "tests/test_progress.py::test_a_demo_run_to_a_file_writes_a_few_lines",
    "tests/test_readme.py::test_readme_api_example_runs",
    "tests/test_resume.py::test_a_checkpoint_that_is_not_this_runs_is_refused_clearly",
    "tests/test_resume.py::test_a_full_disk_keeps_the_last_checkpoint_and_the_run_resumes",
    "tests/test_resume.py::test_a_truncated_checkpoint_is_refused_clearly",
    "tests/test_resume.py::test_no_command_touches_a_live_run_directory",
    "tests/test_resume.py::test_out_of_gpu_memory_falls_back_to_the_cpu_from_the_checkpoint",
    "tests/test_resume.py::test_repeated_kills_and_torn_records_still_resume_identically",
    "tests/test_resume.py::test_sigkill_then_resume_is_identical",
    "tests/test_resume.py::test_sigterm_checkpoints_exits_cleanly_and_resumes",
    "tests/test_resume.py::test_an_interrupted_batch_resumes_to_the_uninterrupted_runs",
    "tests/test_resume.py::test_a_batch_stopped_in_any_part_of_any_stage_goes_on_to_the_same_runs",
    "tests/test_resume.py::test_a_damaged_batch_checkpoint_is_refused_clearly_and_another_batchs_is_ignored",
    "tests/test_records.py::test_overwrite_keeps_a_groktransfer_folder_that_holds_a_users_file",
    "tests/test_sweep.py::test_a_batch_out_of_gpu_memory_is_split_and_restarted_from_the_initial_weights",
    "tests/test_sweep.py::test_a_signal_stops_a_batch_group_that_trains_its_runs_one_at_a_time",
    "tests/test_sweep.py::test_a_second_sweep_on_the_same_out_is_refused_while_a_batch_trains",
    "tests/test_sweep.py::test_batched_pipeline_writes_what_run_experiment_writes",
    "tests/test_sweep.py::test_cli_run_seeds_writes_one_directory_per_seed_and_a_table",
    "tests/test_sweep.py::test_finished_runs_are_reused_and_mixed_groups_run_in_order",
    "tests/test_sweep.py::test_runs_that_share_a_weak_stage_train_it_once",
    "tests/test_sweep.py::test_targets_from_different_weak_embedding_files_train_together_as_they_would_alone",
    "tests/test_tracking.py::test_a_batch_of_runs_writes_each_runs_trackers",
    "tests/test_tracking.py::test_after_an_interruption_and_resume_tensorboard_holds_each_step_once",
    "tests/test_tracking.py::test_all_three_trackers_hold_the_runs_numbers",
    "tests/test_transformer.py::test_batched_transformers_equal_one_at_a_time",
    "tests/test_transformer.py::test_equation_format_target_gets_the_weak_rows_plus_two",
    "tests/test_transformer.py::test_fnn_embedding_removes_the_transformers_grokking_delay",
    "tests/test_xor.py::test_no_three_neuron_network_beats_three_quarters_but_four_neurons_can",
    "tests/test_faults.py",  # every test there starts real processes and faults
    "tests/test_fuzz_files.py::test_resume_with_a_damaged_record_repairs_it_or_refuses",
    "tests/test_fuzz_files.py::test_resume_from_a_structurally_damaged_checkpoint_refuses_or_finishes",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid.split("[")[0] in SLOW_TESTS or item.nodeid.split("::")[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
