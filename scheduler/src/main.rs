use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let flags = component_base::flags::parse();
    match ferrokube_scheduler::run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrokube-scheduler: {e:#}");
            ExitCode::FAILURE
        }
    }
}
