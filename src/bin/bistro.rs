//! The `bistro` binary: parse arguments, run, map the outcome to an exit code.

fn main() {
    let cli = bistro::cli::parse();
    let code = match bistro::cli::run(cli) {
        Ok(code) => code,
        Err(error) if error.is_broken_pipe() => 0,
        Err(error) => {
            eprintln!(
                "bistro: {}",
                bistro::foundation::sanitize::for_terminal(&error.message())
            );
            error.exit_code()
        }
    };
    std::process::exit(code);
}
