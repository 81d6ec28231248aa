//! `carry contacts`: the people to contact, the ones the person adds and the ones
//! their providers' records name.

use carry_core::contacts::{Contact, NewContact};
use carry_core::{Profile, Result};

use crate::output::{clean, Outcome};

/// What `carry contacts` does.
#[derive(clap::Subcommand, Debug)]
pub enum ContactsAction {
    /// List them: yours first, then the ones your providers' records name.
    List,
    /// Add someone to contact (kept in your record, shown on your emergency card and
    /// in your summaries, never sent to a provider).
    Add {
        /// Their name.
        name: String,
        /// How they are related to you ("daughter", "neighbour").
        #[arg(long)]
        relationship: Option<String>,
        /// Their telephone number.
        #[arg(long)]
        phone: Option<String>,
        /// Their email address.
        #[arg(long)]
        email: Option<String>,
    },
    /// Remove a contact you added (by its item id, from carry contacts).
    Remove {
        /// The contact's item id.
        id: i64,
    },
}

/// The list as `carry contacts` prints it.
#[derive(serde::Serialize)]
struct Listed {
    contacts: Vec<Contact>,
}

impl std::fmt::Display for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.contacts.is_empty() {
            return writeln!(
                f,
                "No contacts. Add one: carry contacts add NAME --relationship R --phone N"
            );
        }
        for c in &self.contacts {
            let whose = match c.item {
                Some(id) => format!("[{id}] added by you"),
                None => format!("from {}", clean(&c.source)),
            };
            let mut line = clean(&c.line()).into_owned();
            if c.phone.is_some() {
                if let Some(e) = &c.email {
                    line.push_str(&format!(" {}", clean(e)));
                }
            }
            writeln!(f, "{line}  ({whose})")?;
        }
        Ok(())
    }
}

/// The one contact `carry contacts add` kept.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Added(Contact);

impl std::fmt::Display for Added {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Added {} as item {}. It is on your emergency card and in your summaries.",
            clean(&self.0.line()),
            self.0.item.unwrap_or_default()
        )
    }
}

/// `carry contacts [list|add|remove]`.
pub fn contacts(profile: &Profile, action: Option<ContactsAction>) -> Result<Outcome> {
    Ok(match action.unwrap_or(ContactsAction::List) {
        ContactsAction::List => Outcome::ok(Listed {
            contacts: profile.contacts()?,
        }),
        ContactsAction::Add {
            name,
            relationship,
            phone,
            email,
        } => {
            let added = profile.add_contact(&NewContact {
                name,
                relationship,
                phone,
                email,
            })?;
            Outcome::ok(Added(added))
        }
        ContactsAction::Remove { id } => {
            profile.remove_contact(id)?;
            Outcome::ok(Removed { removed: id })
        }
    })
}

/// What `carry contacts remove` says.
#[derive(serde::Serialize)]
struct Removed {
    removed: i64,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Removed contact {}.", self.removed)
    }
}
