use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let flags = component_base::flags::parse();
    match ferrokube_kubelet::run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrokube-kubelet: {e:#}");
            ExitCode::FAILURE
        }
    }
}
