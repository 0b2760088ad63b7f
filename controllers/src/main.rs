use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let flags = component_base::flags::parse();
    match ferrokube_controllers::run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrokube-controller-manager: {e:#}");
            ExitCode::FAILURE
        }
    }
}
