//! The relay client: log in with the identity key (challenge and response), publish
//! the X25519 key in the key directory, post sealed envelopes, fetch and acknowledge
//! the mailbox, and delete a revoked grant's envelopes. The protocol is described in
//! `docs/formats.md` ("Relay"); its JSON bodies are the types of
//! [`carry_proto::relay::messages`], shared with the endpoint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use carry_proto::relay::messages::{
    AckRequest, ChallengeAnswer, ChallengeRequest, DeletedAnswer, DeliverAnswer, DeliverRequest,
    MailboxPage, PublishRequest, RetireRequest, RetiredAnswer, SessionAnswer, SessionRequest,
};
use serde::Serialize;

use crate::crypto::identity::Identity;
use crate::error::{Error, Result};
use crate::http::{Http, Resp};

/// What a sign-in signs: the context, the origin of the endpoint as this client
/// reaches it, a newline, and the challenge. A signature made for one endpoint is no
/// use at another, so a hostile endpoint cannot pass a real one's challenge on to be
/// signed (`docs/formats.md`, the relay).
pub fn auth_message(origin: &str, challenge: &[u8]) -> Vec<u8> {
    carry_proto::relay::auth_message(origin, challenge)
}

/// The origin (`scheme://host[:port]`, the port only when not the scheme's default)
/// of an endpoint URL.
pub fn origin_of(endpoint: &str) -> Result<String> {
    url::Url::parse(endpoint)
        .map(|u| u.origin().ascii_serialization())
        .map_err(|_| Error::invalid(format!("'{endpoint}' is not a URL")))
}

/// A request body as JSON text, made once for every try of the request.
pub fn json_text<T: Serialize>(body: &T) -> Result<String> {
    Ok(serde_json::to_string(body)?)
}

/// A JSON request body.
trait JsonBody {
    fn json_body(self, text: &str) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, text: &str) -> Self {
        self.header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(text.to_string())
    }
}

/// A logged-in relay session.
pub struct Relay {
    http: Http,
    base: String,
    /// The endpoint's root URL (the share-link host lives beside the relay).
    root: String,
    token: zeroize::Zeroizing<String>,
    /// This identity's mailbox id, as the relay computed it.
    pub mailbox: String,
}

/// One envelope from the mailbox: its id, tag, body (base64url) and the sender's
/// mailbox as the relay saw it signed in (absent from relays that do not say).
pub type Fetched = carry_proto::relay::messages::Envelope;

/// What a sign-in came to.
pub enum SignIn {
    /// A session.
    Session(Relay),
    /// The key was retired at the endpoint, in favour of the key of this mailbox.
    Replaced {
        /// The successor's mailbox id, as the endpoint names it.
        successor: String,
    },
}

/// What became of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    /// The relay keeps it under this id.
    Stored(i64),
    /// The recipient's mailbox is full (507): nothing was stored; try again later.
    Full,
}

/// The relay base for an endpoint URL: `URL/relay/v1`.
pub fn base_of(endpoint: &str) -> Result<String> {
    let url = url::Url::parse(endpoint)
        .map_err(|_| Error::invalid(format!("'{endpoint}' is not a URL")))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(Error::invalid(
            "the endpoint must be https (plain http only on this machine, for development)",
        ));
    }
    Ok(format!("{}/relay/v1", endpoint.trim_end_matches('/')))
}

/// The error for the relay's answer to `what` with a status that is not success: its
/// kind follows the status (a refused login, not found, keys replaced, too large, or
/// a network error), and its reason names `what`.
pub fn status_error(what: &str, r: &Resp) -> Error {
    match r.status {
        401 | 403 => Error::Auth {
            reason: format!("the relay refused the login ({what}: {})", r.status),
        },
        404 => Error::not_found(format!("{what}: not at the relay")),
        410 => Error::not_found(format!(
            "{what}: the recipient's keys were replaced; they are sent their new ones"
        )),
        413 => Error::invalid(format!("{what}: too large for the relay")),
        s => Error::Network {
            reason: format!("the relay answered {s} ({what})"),
            retry_after_s: None,
        },
    }
}

/// The keys being retired were already replaced by keys this profile does not hold.
pub fn replaced_by_another() -> Error {
    Error::Denied {
        reason: "the previous keys were already replaced at the endpoint by keys this \
                 profile does not hold: a removed device acted first. Tell the people you \
                 share with, and compare safety numbers with them again"
            .into(),
    }
}

/// The relay's answer to `what` parsed as `T`; a body that is not is a network error
/// (the answer is not what the protocol says).
pub fn json_of<T: serde::de::DeserializeOwned>(what: &str, r: &Resp) -> Result<T> {
    serde_json::from_slice(&r.body).map_err(|_| Error::Network {
        reason: format!("the relay's answer to {what} is not what the protocol says"),
        retry_after_s: None,
    })
}

impl Relay {
    /// Log in as `identity` and publish its X25519 key with the binding signature.
    /// Keys retired at the endpoint (this device was removed from the profile, and
    /// another replaced them) are [`Error::Revoked`].
    pub async fn connect(http: Http, endpoint: &str, identity: &Identity) -> Result<Relay> {
        match Relay::sign_in(http, endpoint, identity).await? {
            SignIn::Session(relay) => Ok(relay),
            SignIn::Replaced { .. } => Err(Error::Revoked {
                what: "this device's access to the profile: another of the person's \
                       devices removed it and replaced the profile's keys"
                    .into(),
            }),
        }
    }

    /// Log in as [`Relay::connect`] does, telling retired keys apart.
    pub async fn sign_in(http: Http, endpoint: &str, identity: &Identity) -> Result<SignIn> {
        let base = base_of(endpoint)?;
        let me = identity.public();
        let key = B64.encode(me.sign);
        let asked = json_text(&ChallengeRequest { key: key.clone() })?;
        let r = http
            .send(|| {
                http.client()
                    .post(format!("{base}/challenge"))
                    .json_body(&asked)
            })
            .await?;
        if r.status == 403 {
            if let Ok(retired) = serde_json::from_slice::<RetiredAnswer>(&r.body) {
                return Ok(SignIn::Replaced {
                    successor: retired.successor,
                });
            }
        }
        if r.status != 200 {
            return Err(status_error("challenge", &r));
        }
        let c: ChallengeAnswer = json_of("challenge", &r)?;
        let raw = B64.decode(&c.challenge).map_err(|_| Error::Network {
            reason: "the relay's challenge is not base64url".into(),
            retry_after_s: None,
        })?;
        let msg = auth_message(&origin_of(endpoint)?, &raw);
        let signed = json_text(&SessionRequest {
            challenge: c.challenge,
            key,
            signature: B64.encode(identity.sign(&msg)),
        })?;
        let r = http
            .send(|| {
                http.client()
                    .post(format!("{base}/session"))
                    .json_body(&signed)
            })
            .await?;
        if r.status != 200 {
            return Err(status_error("login", &r));
        }
        let s: SessionAnswer = json_of("login", &r)?;
        if s.mailbox != me.mailbox() {
            return Err(Error::Network {
                reason: "the relay named a different mailbox for this identity".into(),
                retry_after_s: None,
            });
        }
        let relay = Relay {
            http,
            base,
            root: endpoint.trim_end_matches('/').to_string(),
            token: zeroize::Zeroizing::new(s.token),
            mailbox: s.mailbox,
        };
        let published = json_text(&PublishRequest {
            binding: B64.encode(identity.binding()),
            enc: B64.encode(me.enc),
        })?;
        let r = relay
            .send(|c, base| c.put(format!("{base}/directory")).json_body(&published))
            .await?;
        if r.status != 204 && r.status != 200 {
            return Err(status_error("directory", &r));
        }
        Ok(SignIn::Session(relay))
    }

    /// Retire the signed-in key (`identity`'s) in favour of `successor`, for good:
    /// it never signs in again, and what it owns at the endpoint passes to the
    /// successor. A key already retired in favour of another is [`Error::Denied`].
    pub async fn retire(&self, identity: &Identity, successor: &[u8; 32]) -> Result<()> {
        let message = carry_proto::relay::retire_message(&origin_of(&self.root)?, successor);
        let body = json_text(&RetireRequest {
            signature: B64.encode(identity.sign(&message)),
            successor: B64.encode(successor),
        })?;
        let r = self
            .send(|c, base| c.post(format!("{base}/retire")).json_body(&body))
            .await?;
        match r.status {
            200 => Ok(()),
            409 => Err(replaced_by_another()),
            _ => Err(status_error("retire", &r)),
        }
    }

    async fn send(
        &self,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Resp> {
        let token = self.token.as_str();
        self.http
            .send(|| build(self.http.client(), &self.base).bearer_auth(token))
            .await
    }

    /// Post one sealed envelope to `mailbox` under `tag`. Returns its relay id; a
    /// full mailbox is an error (see [`Relay::offer`] to tell it apart).
    pub async fn post(&self, mailbox: &str, tag: &str, body: &[u8]) -> Result<i64> {
        match self.offer(mailbox, tag, body).await? {
            Posted::Stored(id) => Ok(id),
            Posted::Full => Err(Error::Network {
                reason: "the recipient's relay mailbox is full".into(),
                retry_after_s: None,
            }),
        }
    }

    /// Post one sealed envelope to `mailbox` under `tag`: stored, or refused because
    /// the mailbox is full.
    pub async fn offer(&self, mailbox: &str, tag: &str, body: &[u8]) -> Result<Posted> {
        let payload = json_text(&DeliverRequest {
            body: B64.encode(body),
            tag: tag.to_string(),
        })?;
        let r = self
            .send(|c, base| {
                c.post(format!("{base}/mailboxes/{mailbox}"))
                    .json_body(&payload)
            })
            .await?;
        if r.status == 507 {
            return Ok(Posted::Full);
        }
        if r.status != 201 && r.status != 200 {
            return Err(status_error("post", &r));
        }
        Ok(Posted::Stored(json_of::<DeliverAnswer>("post", &r)?.id))
    }

    /// Envelopes in this identity's mailbox after `after`, and whether there are more.
    pub async fn fetch(&self, after: i64, limit: u32) -> Result<(Vec<Fetched>, bool)> {
        let r = self
            .send(|c, base| c.get(format!("{base}/mailbox?after={after}&limit={limit}")))
            .await?;
        if r.status != 200 {
            return Err(status_error("fetch", &r));
        }
        let p: MailboxPage = json_of("fetch", &r)?;
        Ok((p.envelopes, p.more))
    }

    /// Acknowledge (and so delete) envelopes from this identity's mailbox.
    pub async fn ack(&self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(1000) {
            let body = json_text(&AckRequest {
                ids: chunk.to_vec(),
            })?;
            let r = self
                .send(|c, base| c.post(format!("{base}/mailbox/ack")).json_body(&body))
                .await?;
            if r.status != 200 {
                return Err(status_error("ack", &r));
            }
        }
        Ok(())
    }

    /// The share-link host's owner API: `METHOD {root}/shl/v1/{path}` with the session
    /// and a JSON body (see [`json_text`]), if given.
    pub async fn shl(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<Resp> {
        let url = format!("{}/shl/v1/{path}", self.root);
        let token = self.token.as_str();
        self.http
            .send(|| {
                let r = self
                    .http
                    .client()
                    .request(method.clone(), &url)
                    .bearer_auth(token);
                match body {
                    Some(b) => r.json_body(b),
                    None => r,
                }
            })
            .await
    }

    /// A request to `{root}/{path}` with the session, built by `build` (for the
    /// endpoint's other owner APIs, such as backups).
    pub async fn owner(
        &self,
        path: &str,
        build: impl Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> Result<Resp> {
        let url = format!("{}/{path}", self.root);
        let token = self.token.as_str();
        self.http
            .send(|| build(self.http.client(), &url).bearer_auth(token))
            .await
    }

    /// Delete every envelope this identity posted under `tag`.
    pub async fn delete_tag(&self, tag: &str) -> Result<u64> {
        let r = self
            .send(|c, base| c.delete(format!("{base}/tags/{tag}")))
            .await?;
        if r.status != 200 {
            return Err(status_error("delete", &r));
        }
        Ok(json_of::<DeletedAnswer>("delete", &r)?.deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_names_the_endpoint_by_its_origin() {
        assert_eq!(
            origin_of("https://Carry.Example:443/x/").unwrap(),
            "https://carry.example"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(origin_of("not a url").is_err());
        let m = auth_message("https://carry.example", b"CH");
        assert_eq!(m, b"carry-relay-auth-v2\nhttps://carry.example\nCH");
        assert_ne!(m, auth_message("https://evil.example", b"CH"));
    }
}
