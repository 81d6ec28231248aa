//! The people to contact: the ones the person adds, and the ones their providers'
//! records name.

use carry_core::contacts as cc;

use crate::error::Result;
use crate::profile::{blocking, Profile};

/// A contact the person adds.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewContact {
    /// Their name, as the person writes it (required).
    pub name: String,
    /// How they are related ("daughter", "neighbour"), if given.
    #[uniffi(default = None)]
    pub relationship: Option<String>,
    /// A telephone number: digits, spaces and `+ - ( ) .`.
    #[uniffi(default = None)]
    pub phone: Option<String>,
    /// An email address.
    #[uniffi(default = None)]
    pub email: Option<String>,
}

/// A person to contact, as listed.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Contact {
    /// The item id of a contact the person added (to remove it); null for one a
    /// provider's record names.
    pub item: Option<i64>,
    /// Their name, where given.
    pub name: Option<String>,
    /// How they are related, in the record's words.
    pub relationship: Option<String>,
    /// Their telephone number.
    pub phone: Option<String>,
    /// Their email address.
    pub email: Option<String>,
    /// Where it comes from: `self` for one the person added, else the source's name.
    pub source: String,
    /// One line to show: name, relationship in brackets, telephone (else email).
    pub line: String,
}

impl From<cc::Contact> for Contact {
    fn from(c: cc::Contact) -> Self {
        let line = c.line();
        Contact {
            item: c.item,
            name: c.name,
            relationship: c.relationship,
            phone: c.phone,
            email: c.email,
            source: c.source,
            line,
        }
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl Profile {
    /// The people to contact: the ones the person added (oldest first), then those
    /// their providers' records name, each person once.
    pub async fn contacts(&self) -> Result<Vec<Contact>> {
        let core = self.core.clone();
        let all = blocking(move || core.contacts()).await?;
        Ok(all.into_iter().map(Into::into).collect())
    }

    /// Add someone to contact. It is kept in the record as a `RelatedPerson`, shown on
    /// the emergency card and in summaries, and never sent to a provider.
    /// `InvalidInput` for no name, or a telephone number or email that is not one.
    pub async fn add_contact(&self, contact: NewContact) -> Result<Contact> {
        let core = self.core.clone();
        let c = cc::NewContact {
            name: contact.name,
            relationship: contact.relationship,
            phone: contact.phone,
            email: contact.email,
        };
        Ok(blocking(move || core.add_contact(&c)).await?.into())
    }

    /// Remove a contact the person added (its `item`). `InvalidInput` for anything
    /// else, `NotFound` for no such item.
    pub async fn remove_contact(&self, item: i64) -> Result<()> {
        let core = self.core.clone();
        blocking(move || core.remove_contact(item)).await
    }
}
