//! The `bistro` binary: parse arguments, run, map the outcome to an exit code.

use std::io::Write;

fn main() {
    let cli = bistro::cli::parse();
    let code = match bistro::cli::run(cli) {
        Ok(code) => code,
        Err(error) if error.is_broken_pipe() => 0,
        Err(error) => {
            // A closed stderr loses the message, never the exit code.
            let _ = writeln!(
                std::io::stderr(),
                "bistro: {}",
                bistro::foundation::sanitize::for_terminal(&error.message())
            );
            error.exit_code()
        }
    };
    std::process::exit(code);
}
