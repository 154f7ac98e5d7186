//! The `bistro` binary: parse arguments, run, map the outcome to an exit code.

use clap::Parser;

fn main() {
    let cli = bistro::cli::Cli::parse();
    let code = match bistro::cli::run(cli) {
        Ok(code) => code,
        Err(error) if bistro::cli::is_broken_pipe(&error) => 0,
        Err(error) => {
            eprintln!(
                "bistro: {}",
                bistro::sanitize::for_terminal(&bistro::cli::error_message(&error))
            );
            bistro::cli::exit_code_for(&error)
        }
    };
    std::process::exit(code);
}
