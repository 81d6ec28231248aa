//! Moving the profile to a new phone while the old one still works.
//!
//! The old phone starts a [`MoveOut`] and shows its pairing code as a QR. The new
//! phone scans it with [`MoveIn::start`]; both then show the same six digits, and
//! the person types the new phone's into the old one ([`MoveOut::send`]). Only then
//! does the old phone seal the whole profile (as a backup under a one-time secret,
//! stored at the endpoint) and send the new phone that secret, sealed to the keys
//! the digits confirmed. The new phone restores it ([`MoveIn::finish`]) with the same
//! identity, people, grants and audit chain, and says so; the old phone deletes the
//! staged copy and offers to wipe itself ([`wipe`]).
//!
//! Adding a device goes the same way ([`MoveOut::add_device`], [`MoveIn::join`]),
//! except that the joining device also sends its own device keys in its hello, the
//! old device lists it among the profile's devices before the profile is staged, and
//! neither is wiped.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pairing::{self, DeviceCard, Message, Purpose, Side};
use crate::crypto::identity::{Identity, PublicIdentity};
use crate::error::{Error, Result};
use crate::keys::KeyStore;
use crate::net::http::Http;
use crate::net::relay::Relay;
use crate::profile::Profile;
use crate::qr::QrMatrix;

/// How long each side waits for the other by default.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(600);

/// The old device's side of a move (or of adding a device).
pub struct MoveOut {
    side: Side,
    endpoint: String,
    code: String,
    purpose: Purpose,
    /// For adding a device: the name this device is listed under if it is not yet.
    my_name: String,
    new_device: Option<PublicIdentity>,
    joining: Option<DeviceCard>,
}

impl MoveOut {
    /// Start a move through the endpoint `endpoint`: a pairing code to show (text
    /// and QR). Nothing of the profile leaves until [`MoveOut::send`].
    pub async fn start(endpoint: &str) -> Result<MoveOut> {
        Self::begin(endpoint, Purpose::Move, "").await
    }

    /// Start adding another device to the profile: a pairing code for it to scan
    /// ([`MoveIn::join`]). `my_name` names this device in the list if it is the
    /// profile's first.
    pub async fn add_device(endpoint: &str, my_name: &str) -> Result<MoveOut> {
        Self::begin(endpoint, Purpose::AddDevice, my_name).await
    }

    async fn begin(endpoint: &str, purpose: Purpose, my_name: &str) -> Result<MoveOut> {
        let side = Side::new(endpoint).await?;
        let code = pairing::code(&side, endpoint, purpose)?;
        Ok(MoveOut {
            side,
            endpoint: endpoint.to_string(),
            code,
            purpose,
            my_name: my_name.to_string(),
            new_device: None,
            joining: None,
        })
    }

    /// The pairing code (`carry:pair:…`), for the new phone to scan.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The pairing code as a QR matrix.
    pub fn qr(&self) -> Result<QrMatrix> {
        crate::qr::qr(&self.code)
    }

    /// Wait up to `wait` for the new phone to scan the code. Returns the six digits
    /// both phones now show, written `123 456`.
    pub async fn wait_for_new_device(&mut self, wait: Duration) -> Result<String> {
        let deadline = Instant::now() + wait;
        loop {
            let (sender, msg) = self.side.receive(None, deadline).await?;
            if let Message::Hello {
                keys,
                binding,
                device,
            } = msg
            {
                let them = pairing::peer(&keys, &binding)?;
                if them.enc != sender || (self.purpose == Purpose::AddDevice) != device.is_some() {
                    continue;
                }
                self.new_device = Some(them);
                self.joining = device;
                return Ok(pairing::short_authentication_string(
                    &self.side.me.public(),
                    &them,
                ));
            }
        }
    }

    /// Check the digits the person typed from the new phone's screen, then send the
    /// whole profile, sealed to that phone, and wait up to `wait` for it to say the
    /// profile opened. The staged copy at the endpoint is deleted either way.
    /// Different digits are [`Error::Denied`] and send nothing.
    pub async fn send(
        &mut self,
        profile: Arc<Profile>,
        typed_digits: &str,
        wait: Duration,
    ) -> Result<()> {
        let them = self.new_device.ok_or_else(|| {
            Error::invalid("no new phone has scanned the code yet; wait for it first")
        })?;
        let shown = pairing::short_authentication_string(&self.side.me.public(), &them);
        if !pairing::same_sas(&shown, typed_digits) {
            // Tell the other side, so it stops waiting.
            let _ = self.side.send(&them, &Message::Cancel).await;
            return Err(Error::Denied {
                reason: "the digits do not match the new phone's; nothing was sent. Start again, and check that the new phone scanned this phone's code".into(),
            });
        }
        let joining = self.joining.clone();
        let my_name = self.my_name.clone();
        crate::profile::db(&profile, move |p| {
            p.vault().write(|c| match &joining {
                Some(card) => {
                    let tx = c.transaction()?;
                    super::registry::register(&tx, &my_name, card)?;
                    tx.commit()?;
                    Ok(())
                }
                None => crate::audit::append(
                    c,
                    crate::audit::AuditEvent::MovedOut,
                    None,
                    "the profile was sent to a new phone, confirmed by the digits on both screens",
                ),
            })
        })
        .await?;
        if self.joining.is_some() {
            // Open this device's own mailbox at the relay, for the newcomer's changes.
            let me = crate::profile::db(&profile, |p| {
                p.vault().write(|c| Ok(super::registry::this_device(c)?.1))
            })
            .await?;
            Relay::connect(Http::new(None, None)?, &self.endpoint, &me).await?;
        }
        let (code, path) = crate::backup::stage_move(profile, &self.side.relay).await?;
        let result = async {
            self.side
                .send(
                    &them,
                    &Message::Transfer {
                        code: code.to_string(),
                    },
                )
                .await?;
            let deadline = Instant::now() + wait;
            match self.side.receive(Some(&them), deadline).await?.1 {
                Message::Done => Ok(()),
                _ => Err(Error::Denied {
                    reason: "the new phone stopped the move".into(),
                }),
            }
        }
        .await;
        let deleted = self.side.relay.owner(&path, |c, url| c.delete(url)).await;
        if let Err(e) = &deleted {
            tracing::warn!(error = %e, "the staged copy could not be deleted now");
        }
        result
    }

    /// The endpoint this move goes through.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

/// The new device's side of a move (or of joining a profile).
pub struct MoveIn {
    side: Side,
    endpoint: String,
    old_device: PublicIdentity,
    /// When joining: this device's own keys and id.
    device: Option<(Identity, String)>,
}

impl MoveIn {
    /// Take up the pairing code of a move the old phone shows: say hello through the
    /// relay. Show [`MoveIn::digits`] next, for the person to type into the old phone.
    pub async fn start(code: &str) -> Result<MoveIn> {
        let (endpoint, old_device, purpose) = pairing::parse_code(code)?;
        if purpose != Purpose::Move {
            return Err(Error::invalid(
                "this code adds a device to a profile; join with it instead of moving",
            ));
        }
        Self::hello(endpoint, old_device, None).await
    }

    /// Take up the pairing code of a device being added, naming this device `name`.
    pub async fn join(code: &str, name: &str) -> Result<MoveIn> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 60 {
            return Err(Error::invalid(
                "give this device a name of 1 to 60 characters",
            ));
        }
        let (endpoint, old_device, purpose) = pairing::parse_code(code)?;
        if purpose != Purpose::AddDevice {
            return Err(Error::invalid(
                "this code moves a profile to a new phone; move in with it instead of joining",
            ));
        }
        let me = Identity::generate()?;
        let id = me.public().handle();
        let card = super::registry::card_of(&id, name, &me);
        Self::hello(endpoint, old_device, Some((me, id, card))).await
    }

    async fn hello(
        endpoint: String,
        old_device: PublicIdentity,
        device: Option<(Identity, String, DeviceCard)>,
    ) -> Result<MoveIn> {
        let side = Side::new(&endpoint).await?;
        let (keys, binding) = side.keys();
        let (device, card) = match device {
            Some((me, id, card)) => (Some((me, id)), Some(card)),
            None => (None, None),
        };
        side.send(
            &old_device,
            &Message::Hello {
                keys,
                binding,
                device: card,
            },
        )
        .await?;
        Ok(MoveIn {
            side,
            endpoint,
            old_device,
            device,
        })
    }

    /// The six digits to show, written `123 456`: the old phone asks for them.
    pub fn digits(&self) -> String {
        pairing::short_authentication_string(&self.old_device, &self.side.me.public())
    }

    /// Wait up to `wait` for the profile and restore it into the empty folder `dir`,
    /// wrapping its vault key with `key_store`. The old phone is told it arrived.
    pub async fn finish(
        mut self,
        dir: &Path,
        key_store: Arc<dyn KeyStore>,
        wait: Duration,
    ) -> Result<Profile> {
        let deadline = Instant::now() + wait;
        let code = match self.side.receive(Some(&self.old_device), deadline).await?.1 {
            Message::Transfer { code } => zeroize::Zeroizing::new(code),
            Message::Cancel => {
                return Err(Error::Denied {
                    reason: "the old phone stopped the move (the digits did not match)".into(),
                })
            }
            _ => {
                return Err(Error::Envelope {
                    problem: crate::error::EnvelopeProblem::Malformed,
                })
            }
        };
        let joining = self.device.take();
        let moving = joining.is_none();
        if let Some((me, _)) = &joining {
            // Open this device's own mailbox at the relay, for the others' changes.
            Relay::connect(Http::new(None, None)?, &self.endpoint, me).await?;
        }
        let join = joining.map(|(me, id)| -> Box<crate::backup::Join> {
            Box::new(move |c| super::store_self(c, &id, &me))
        });
        let profile =
            crate::backup::restore_as(dir, &self.endpoint, &code, key_store, join).await?;
        // Records shared with the person are not in backups: ask for them again.
        crate::share::resync_received(&profile)?;
        if moving {
            profile.vault().write(|c| {
                crate::audit::append(
                    c,
                    crate::audit::AuditEvent::MovedIn,
                    None,
                    "the profile arrived from the old phone",
                )
            })?;
        }
        self.side.send(&self.old_device, &Message::Done).await?;
        Ok(profile)
    }
}

/// Wipe this device's copy of the profile in `dir` (after a move): the vault, its
/// key file and every shared record kept beside it. The profile must be closed.
pub fn wipe(dir: &Path) -> Result<()> {
    if !dir.join(crate::vault::VAULT_FILE).exists() {
        return Err(Error::NotFound {
            what: format!("a profile in {}", dir.display()),
        });
    }
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
