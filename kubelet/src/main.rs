use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let flags = component_base::flags::parse();
    match ferrokube_kubelet::run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "ferrokube-kubelet: {}",
                component_base::error::one_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
