//! `glance-manage`: database commands. Exits non-zero with the reason on failure.

use clap::Parser;
use glance_registry::manage::{ManageCli, run};

fn main() -> std::process::ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(ManageCli::parse()) {
        Ok(out) => {
            print!("{out}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("glance-manage: {}", glance_registry::error::chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
