//! Integration tests through the real `bistro` binary.

mod util;

mod commands;
mod config_errors;
mod demo;
mod faults;
mod process_hygiene;
mod run_task;
mod status_lines;
