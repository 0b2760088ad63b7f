//! Port-forward streams come in pairs, one `data` and one `error` stream per forwarded connection, tied by
//! their `requestID` header (k8s.io/cri-streaming portforward/httpstream.go): checking a stream's headers,
//! its request ID, and matching the halves of each pair.

use std::collections::HashMap;

use crate::server::spdy::Headers;

/// The header naming the pod's port.
pub const PORT_HEADER: &str = "port";
/// The header tying a pair's two streams.
pub const REQUEST_ID_HEADER: &str = "requestID";
/// The header naming the stream's role.
pub const STREAM_TYPE_HEADER: &str = "streamType";

/// A stream's role in its pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamType {
    /// The forwarded connection's bytes.
    Data,
    /// Where the kubelet writes why forwarding failed.
    Error,
}

/// What a valid port-forward stream's headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The pod's port.
    pub port: u16,
    /// The stream's role.
    pub kind: StreamType,
    /// The pair it belongs to.
    pub request_id: String,
}

/// Checks a new stream's headers as upstream's `httpStreamReceived`, with its messages, and finds its pair's
/// request ID (`requestID`, or for old clients the error stream's ID, data stream's ID − 2).
pub fn stream_info(headers: &Headers, stream_id: u32) -> Result<StreamInfo, String> {
    let port = headers.get(PORT_HEADER).unwrap_or_default();
    if port.is_empty() {
        return Err(format!("{PORT_HEADER:?} header is required"));
    }
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port < 1 {
        return Err(format!("port \"{port}\" must be > 0"));
    }
    let kind = match headers.get(STREAM_TYPE_HEADER).unwrap_or_default() {
        "" => return Err(format!("{STREAM_TYPE_HEADER:?} header is required")),
        "data" => StreamType::Data,
        "error" => StreamType::Error,
        other => return Err(format!("invalid stream type {other:?}")),
    };
    let request_id = match headers.get(REQUEST_ID_HEADER).filter(|id| !id.is_empty()) {
        Some(id) => id.to_string(),
        None => match kind {
            StreamType::Error => stream_id.to_string(),
            StreamType::Data => (i64::from(stream_id) - 2).to_string(),
        },
    };
    Ok(StreamInfo {
        port,
        kind,
        request_id,
    })
}

/// Adding a stream to its pair.
#[derive(Debug, PartialEq, Eq)]
pub enum Added<S> {
    /// The first of its pair: the pair's creation timeout starts.
    Created,
    /// The pair is complete: `(data, error)`.
    Complete(S, S),
    /// The pair already had a stream of this type; the stream is handed back.
    Duplicate(S),
}

/// An incomplete pair.
#[derive(Debug)]
struct Pending<S> {
    data: Option<S>,
    error: Option<S>,
}

/// The incomplete pairs of one connection.
#[derive(Debug)]
pub struct Pairs<S> {
    pending: HashMap<String, Pending<S>>,
}

impl<S> Default for Pairs<S> {
    fn default() -> Self {
        Self {
            pending: HashMap::new(),
        }
    }
}

impl<S> Pairs<S> {
    /// Adds `stream` of type `kind` to pair `request_id`.
    pub fn add(&mut self, request_id: &str, kind: StreamType, stream: S) -> Added<S> {
        let pair = self
            .pending
            .entry(request_id.to_string())
            .or_insert(Pending {
                data: None,
                error: None,
            });
        match (kind, pair.data.take(), pair.error.take()) {
            (StreamType::Data, None, Some(other)) => {
                self.pending.remove(request_id);
                Added::Complete(stream, other)
            }
            (StreamType::Error, Some(other), None) => {
                self.pending.remove(request_id);
                Added::Complete(other, stream)
            }
            (StreamType::Data, Some(data), error) => {
                (pair.data, pair.error) = (Some(data), error);
                Added::Duplicate(stream)
            }
            (StreamType::Error, data, Some(error)) => {
                (pair.data, pair.error) = (data, Some(error));
                Added::Duplicate(stream)
            }
            // A pending pair always holds one stream, so an empty one was just made.
            (StreamType::Data, None, None) => {
                pair.data = Some(stream);
                Added::Created
            }
            (StreamType::Error, None, None) => {
                pair.error = Some(stream);
                Added::Created
            }
        }
    }

    /// The error stream of incomplete pair `request_id`, to report on.
    pub fn error_stream(&mut self, request_id: &str) -> Option<&mut S> {
        self.pending.get_mut(request_id)?.error.as_mut()
    }

    /// Drops pair `request_id` if it is still incomplete (its creation timeout passed); returns its error
    /// stream, if it has one, to report on.
    pub fn expire(&mut self, request_id: &str) -> Option<Option<S>> {
        self.pending.remove(request_id).map(|pair| pair.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .fold(Headers::new(), |h, (name, value)| h.with(name, value))
    }

    #[test]
    fn valid_streams_name_port_type_and_request() {
        let info = stream_info(
            &headers(&[("streamType", "data"), ("port", "8080"), ("requestID", "7")]),
            3,
        )
        .unwrap();
        assert_eq!(
            info,
            StreamInfo {
                port: 8080,
                kind: StreamType::Data,
                request_id: "7".to_string()
            }
        );
    }

    #[test]
    fn old_clients_pair_by_stream_ids() {
        let error = stream_info(&headers(&[("streamType", "error"), ("port", "80")]), 5).unwrap();
        let data = stream_info(&headers(&[("streamType", "data"), ("port", "80")]), 7).unwrap();
        assert_eq!(error.request_id, "5");
        assert_eq!(data.request_id, "5");
    }

    #[test]
    fn bad_headers_get_upstreams_messages() {
        let check = |h: &[(&str, &str)]| stream_info(&headers(h), 1).unwrap_err();
        assert_eq!(
            check(&[("streamType", "data")]),
            "\"port\" header is required"
        );
        assert!(
            check(&[("port", "x"), ("streamType", "data")])
                .starts_with("unable to parse \"x\" as a port: ")
        );
        assert!(check(&[("port", "70000"), ("streamType", "data")]).starts_with("unable to parse"));
        assert_eq!(
            check(&[("port", "0"), ("streamType", "data")]),
            "port \"0\" must be > 0"
        );
        assert_eq!(
            check(&[("port", "80")]),
            "\"streamType\" header is required"
        );
        assert_eq!(
            check(&[("port", "80"), ("streamType", "stdin")]),
            "invalid stream type \"stdin\""
        );
    }

    #[test]
    fn a_pair_completes_with_both_types_in_either_order() {
        let mut pairs = Pairs::default();
        assert_eq!(pairs.add("1", StreamType::Error, 'e'), Added::Created);
        assert_eq!(pairs.add("2", StreamType::Data, 'x'), Added::Created);
        assert_eq!(
            pairs.add("1", StreamType::Data, 'd'),
            Added::Complete('d', 'e')
        );
        // A completed pair is gone: the same request ID starts a new one.
        assert_eq!(pairs.add("1", StreamType::Data, 'd'), Added::Created);
        assert_eq!(
            pairs.add("2", StreamType::Error, 'y'),
            Added::Complete('x', 'y')
        );
    }

    #[test]
    fn a_second_stream_of_a_type_is_a_duplicate() {
        let mut pairs = Pairs::default();
        assert_eq!(pairs.add("1", StreamType::Error, 'e'), Added::Created);
        assert_eq!(
            pairs.add("1", StreamType::Error, 'f'),
            Added::Duplicate('f')
        );
        assert_eq!(pairs.error_stream("1"), Some(&mut 'e'));
    }

    #[test]
    fn an_expired_pair_hands_back_its_error_stream() {
        let mut pairs = Pairs::default();
        pairs.add("1", StreamType::Error, 'e');
        pairs.add("2", StreamType::Data, 'd');
        assert_eq!(pairs.expire("1"), Some(Some('e')));
        assert_eq!(pairs.expire("2"), Some(None));
        assert_eq!(pairs.expire("1"), None, "already gone or completed");
    }
}
