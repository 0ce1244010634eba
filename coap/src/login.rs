//! [`Login`]: the connection-mode state of one CoAP client (`mqtt/connection`): its client id,
//! its token and its heartbeat deadline.

use std::time::{Duration, Instant};

use coap_lite::ResponseType;

use crate::mapping::{Query, Refusal};

/// EMQX's answer to a request whose client id or token does not match the connection.
pub const TOKEN_MISMATCH: &str = "Missing token or clientid in connection mode";

/// What the connection-mode check decided for a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Drop it without an answer (no token at all), as EMQX does.
    Drop,
    /// Answer with this refusal.
    Refuse(Refusal),
}

/// A client logged in through `POST mqtt/connection`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    client_id: String,
    token: String,
    heartbeat: Duration,
    last_seen: Instant,
}

impl Login {
    /// A login at `now` with the token `token` (1..=u32::MAX), expiring `heartbeat` after the
    /// last request.
    pub fn new(now: Instant, client_id: &str, token: u32, heartbeat: Duration) -> Self {
        Self {
            client_id: client_id.to_owned(),
            token: token.to_string(),
            heartbeat,
            last_seen: now,
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token, as the decimal string the client got.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// A request (any, heartbeat or not) keeps the login alive.
    pub fn touch(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// When the login expires without another request.
    pub fn expires_at(&self) -> Instant {
        self.last_seen + self.heartbeat
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at()
    }

    /// Checks a request's `clientid` and `token` against this login.
    pub fn check(&self, query: &Query) -> Verdict {
        check(Some(self), query)
    }
}

/// The connection-mode check of a request other than the login itself (EMQX's
/// `check_auth_state` and `check_token`): without a token the request is dropped; with one
/// that does not match a login (or with no login), it is refused with `4.00`.
pub fn check(login: Option<&Login>, query: &Query) -> Verdict {
    let Some(token) = &query.token else {
        return Verdict::Drop;
    };
    match login {
        Some(login)
            if *token == login.token && query.client_id.as_deref() == Some(&login.client_id) =>
        {
            Verdict::Allowed
        }
        _ => Verdict::Refuse(Refusal {
            code: ResponseType::BadRequest,
            message: TOKEN_MISMATCH,
        }),
    }
}

#[cfg(test)]
mod tests {
    // An origin for simulated time; nothing depends on its value.
    #![allow(clippy::disallowed_methods)]

    use super::*;

    fn query(client_id: Option<&str>, token: Option<&str>) -> Query {
        Query {
            client_id: client_id.map(str::to_owned),
            token: token.map(str::to_owned),
            ..Query::default()
        }
    }

    #[test]
    fn token_checks() {
        let now = Instant::now();
        let login = Login::new(now, "dev", 42, Duration::from_secs(30));
        assert_eq!(
            login.check(&query(Some("dev"), Some("42"))),
            Verdict::Allowed
        );
        assert_eq!(login.check(&query(Some("dev"), None)), Verdict::Drop);
        assert_eq!(login.check(&query(None, None)), Verdict::Drop);
        for bad in [
            query(Some("dev"), Some("43")),
            query(Some("other"), Some("42")),
            query(None, Some("42")),
        ] {
            let Verdict::Refuse(refusal) = login.check(&bad) else {
                panic!("accepted {bad:?}");
            };
            assert_eq!(refusal.code, ResponseType::BadRequest);
            assert_eq!(refusal.message, TOKEN_MISMATCH);
        }
        assert!(matches!(
            check(None, &query(Some("dev"), Some("42"))),
            Verdict::Refuse(_)
        ));
    }

    #[test]
    fn heartbeat_expiry() {
        let start = Instant::now();
        let mut login = Login::new(start, "dev", 1, Duration::from_secs(30));
        assert!(!login.is_expired(start + Duration::from_secs(29)));
        login.touch(start + Duration::from_secs(29));
        assert!(!login.is_expired(start + Duration::from_secs(58)));
        assert!(login.is_expired(start + Duration::from_secs(59)));
        assert_eq!(login.expires_at(), start + Duration::from_secs(59));
    }
}
