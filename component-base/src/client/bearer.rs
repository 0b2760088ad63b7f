//! A bearer token that can be replaced while clients hold it, as client-go's token sources are: the
//! controller-manager's per-controller ServiceAccount tokens expire and are requested again.

use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::Request;
use http::header::{AUTHORIZATION, HeaderValue, InvalidHeaderValue};
use tower::{Layer, Service};

/// The current token of a client; cheap to clone, every clone sees [`BearerToken::set`].
#[derive(Clone, Debug)]
pub struct BearerToken {
    header: Arc<RwLock<HeaderValue>>,
}

impl BearerToken {
    /// A token source starting with `token`.
    pub fn new(token: &str) -> Result<Self, InvalidHeaderValue> {
        Ok(Self {
            header: Arc::new(RwLock::new(header(token)?)),
        })
    }

    /// Replaces the token for every later request.
    pub fn set(&self, token: &str) -> Result<(), InvalidHeaderValue> {
        let header = header(token)?;
        *self.header.write().unwrap_or_else(|e| e.into_inner()) = header;
        Ok(())
    }

    fn current(&self) -> HeaderValue {
        self.header
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn header(token: &str) -> Result<HeaderValue, InvalidHeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    Ok(value)
}

impl<S> Layer<S> for BearerToken {
    type Service = WithBearerToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithBearerToken {
            inner,
            token: self.clone(),
        }
    }
}

/// The service made by [`BearerToken`]'s layer: it sets `Authorization` on every request.
#[derive(Clone, Debug)]
pub struct WithBearerToken<S> {
    inner: S,
    token: BearerToken,
}

impl<S, B> Service<Request<B>> for WithBearerToken<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request
            .headers_mut()
            .insert(AUTHORIZATION, self.token.current());
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_token_is_sent_from_then_on() {
        let token = BearerToken::new("first").unwrap();
        let clone = token.clone();
        token.set("second").unwrap();
        assert_eq!(clone.current(), "Bearer second");
        assert!(clone.current().is_sensitive(), "kept out of debug output");
        assert!(BearerToken::new("bad\ntoken").is_err());
    }
}
