//! lms's own process: its config from the environment, then `serve`, on the runtime
//! `mas_kit::runtime` picks for the cores the process is given.

fn main() -> std::process::ExitCode {
    mas_kit::runtime::main("lms", lms::Config::from_env, lms::serve)
}
