use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let (flags, overrides) = ferrokube_scheduler::parse();
    match ferrokube_scheduler::run(flags, overrides).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "ferrokube-scheduler: {}",
                component_base::error::one_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
