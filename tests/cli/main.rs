//! Integration tests through the real `bistro` binary.

mod util;

mod benchmark_run;
mod closed_streams;
mod commands;
mod config_errors;
mod contract;
mod daemon;
mod demo;
mod disk_full;
mod faults;
mod hostile_clients;
mod http;
mod input_bounds;
mod plan;
mod process_hygiene;
mod refusals;
mod remote;
mod run_task;
mod scheduling;
mod seed_flags;
mod slurm;
mod status_counts;
mod status_lines;
mod supervision;
mod systemd_units;
mod task_timeouts;
