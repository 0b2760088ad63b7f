//! Errors as the user reads them: one line.

/// `error` and its causes as one line, each cause added only when the line does not already say it: most
/// errors here print their source in their own message, which a plain walk of the chain would repeat.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line = format!("{line}: {text}");
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read kubeconfig /x: {source} (pass --kubeconfig)")]
    struct Prints {
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("starting")]
    struct Wraps(#[source] std::io::Error);

    #[test]
    fn a_cause_already_printed_is_not_repeated_and_others_are_added() {
        let missing = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        assert_eq!(
            one_line(&Prints { source: missing() }),
            "cannot read kubeconfig /x: no such file (pass --kubeconfig)"
        );
        assert_eq!(one_line(&Wraps(missing())), "starting: no such file");
    }
}
