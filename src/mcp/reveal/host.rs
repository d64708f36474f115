//! The stdio reveal listener answers only to the loopback address it serves: a page loaded from
//! another name that resolves to 127.0.0.1 (DNS rebinding), or from `localhost`, gets 403, not
//! a link's secret.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The `Host` value a loopback listener on `addr` answers to: its address with its port, as
/// the links and the private page it gives out name it. Not `localhost`: a browser may resolve
/// that to the other loopback family (`::1` for `127.0.0.1`), where another local account can
/// listen on the same port and read what is typed there.
pub(super) fn loopback_hosts(addr: SocketAddr) -> Arc<Vec<String>> {
    Arc::new(vec![addr.to_string()])
}

/// The middleware: any other `Host` (or none) is refused.
pub(super) async fn only(
    State(hosts): State<Arc<Vec<String>>>,
    req: Request,
    next: Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase);
    if host.is_some_and(|h| hosts.contains(&h)) {
        return next.run(req).await;
    }
    let why = format!(
        "Forbidden: Host header is not allowed; open the reveal link exactly as given (http://{}/reveal/...)\n",
        hosts.first().map_or("127.0.0.1", String::as_str)
    );
    (StatusCode::FORBIDDEN, why).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_answers_to_its_address_with_its_port_only() {
        let v4 = loopback_hosts("127.0.0.1:4000".parse().unwrap());
        assert_eq!(*v4, ["127.0.0.1:4000"]);
        let v6 = loopback_hosts("[::1]:4000".parse().unwrap());
        assert_eq!(*v6, ["[::1]:4000"]);
    }
}
