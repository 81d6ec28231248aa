//! The proxy rules' answers (DAPB3051): who decided, where a proxy's access stands,
//! and the notices ahead.

use carry_core::share::proxy as cp;

use crate::types::mirror_enum;

/// Who decided that a proxy may have access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Decider {
    /// The person themself.
    Person,
    /// A clinician or the person's practice.
    Practice,
    /// A court (the Court of Protection appointing a deputy, or another order).
    Court,
}

mirror_enum!(Decider, cp::Decider, [Person, Practice, Court]);

/// Where a proxy's access stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ProxyStanding {
    /// In force.
    Active,
    /// Suspended at the young person's 16th birthday: from then on they decide who
    /// sees their record.
    Suspended,
    /// Over: the end date was reached.
    Ended,
    /// Over: unused for five years.
    Removed,
}

impl From<cp::Standing> for ProxyStanding {
    fn from(s: cp::Standing) -> Self {
        match s {
            cp::Standing::Active => ProxyStanding::Active,
            cp::Standing::Suspended { .. } => ProxyStanding::Suspended,
            cp::Standing::Ended => ProxyStanding::Ended,
            cp::Standing::Removed => ProxyStanding::Removed,
        }
    }
}

/// Who a proxy notice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NoticeRecipient {
    /// The proxy who holds the access (the keeper).
    Keeper,
    /// The person whose record it is.
    Person,
    /// Both of them.
    Both,
}

mirror_enum!(NoticeRecipient, cp::Recipient, [Keeper, Person, Both]);

/// What a proxy notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NoticeKind {
    /// The child turned `age` (11 or 13): review the access.
    Review {
        /// The child's age then.
        age: u8,
    },
    /// Access will be suspended (the 16th birthday) in `days_before` days.
    Suspension {
        /// Days until the suspension (30 or 7).
        days_before: i64,
    },
    /// Access was suspended (the 16th birthday).
    Suspended,
    /// Access will end in `days_before` days.
    End {
        /// Days until the end (30 or 7).
        days_before: i64,
    },
    /// Access ended.
    Ended,
    /// Access was removed, unused for five years.
    Removed,
}

impl From<cp::NoticeKind> for NoticeKind {
    fn from(k: cp::NoticeKind) -> Self {
        match k {
            cp::NoticeKind::Review { age } => NoticeKind::Review { age },
            cp::NoticeKind::Suspension { days_before } => NoticeKind::Suspension { days_before },
            cp::NoticeKind::Suspended => NoticeKind::Suspended,
            cp::NoticeKind::End { days_before } => NoticeKind::End { days_before },
            cp::NoticeKind::Ended => NoticeKind::Ended,
            cp::NoticeKind::Removed => NoticeKind::Removed,
        }
    }
}

/// One thing to tell someone about a proxy's access, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ProxyNotice {
    /// When it is due (Unix seconds).
    pub at: i64,
    /// Who it is for.
    pub to: NoticeRecipient,
    /// What it says.
    pub kind: NoticeKind,
}

impl From<cp::Notice> for ProxyNotice {
    fn from(n: cp::Notice) -> Self {
        ProxyNotice {
            at: n.at,
            to: n.to.into(),
            kind: n.kind.into(),
        }
    }
}
