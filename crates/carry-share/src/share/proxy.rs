//! The life of a proxy's access to someone's record, as rules over plain data and a
//! clock: when it is reviewed, suspended, ended and removed, and who is told when.
//!
//! The rules come from NHS England's DAPB3051, *Identity Verification and
//! Authentication Standard for Health and Care, Authorisation Use Case: Proxy*
//! (DAPB3051 Amd 59/2025), and the issue that asked for them:
//!
//! | When | What | Who is told | Source |
//! |---|---|---|---|
//! | the child's 11th and 13th birthdays | a review of parental access | the keeper | DAPB3051 7.2 |
//! | 30 and 7 days before the 16th birthday | the coming suspension | keeper and young person | DAPB3051 7.2 ("informed ahead of time"); the days are Carry's |
//! | the 16th birthday | parental access is suspended | keeper and young person | DAPB3051 7.2 |
//! | 30 and 7 days before the end date | the coming end | the keeper | DAPB3051 4.1.2 (time-bound access); the days are Carry's |
//! | the end date | access ends | keeper and person | DAPB3051 4.1.2 |
//! | 5 years after the last use (or the grant) | access is removed | keeper and person | DAPB3051 4.1.2 |
//!
//! The basis, who decided and the end date are part of the
//! [`Terms`](crate::share::proxy::Terms), as DAPB3051 4.5 asks that they be recorded.
//!
//! "The keeper" is the proxy who holds the access; "the person" is the one whose
//! record it is (the young person, for a child's record).
//!
//! Times are Unix seconds, UTC. A birthday starts at midnight UTC of its date. A child
//! born on 29 February turns a year older on 1 March in a common year
//! ([`birthday`](crate::share::proxy::birthday)). Nothing here panics or overflows: a
//! date that cannot be represented (beyond the calendar's range) is simply not
//! reached, so its notice is not given and its change of standing does not happen.
//!
//! Everything here is pure: no database, no clock of its own, no I/O. A caller that
//! runs now and then (an app opening) asks [`due`](crate::share::proxy::due) for what
//! happened since it last asked, and gives each notice once.

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::document::BasisKind;
use crate::error::{Error, Result};
use crate::record::summary;

/// The ages at which a child's parental proxy access is reviewed: 11 and 13.
/// DAPB3051 (Authorisation Use Case: Proxy, 7.2) asks for a review between 11 and 13,
/// with 13 a review point of its own; RCGP guidance recommends 11.
pub const REVIEW_AGES: [u8; 2] = [11, 13];

/// The age at which parental proxy access is suspended: 16, when the young person is
/// presumed to have capacity (Mental Capacity Act 2005). DAPB3051 (Authorisation Use
/// Case: Proxy, 7.2) requires systems to suspend proxy access then.
pub const SUSPENSION_AGE: u8 = 16;

/// Access unused for this many years is removed. DAPB3051 (Authorisation Use Case:
/// Proxy, 4.1.2) asks for a process to remove access not used for 5 years.
pub const UNUSED_LIMIT_YEARS: u8 = 5;

/// How many days ahead the keeper (and, for a suspension, the young person) is told of
/// a suspension or an end: 30 and 7. DAPB3051 (Authorisation Use Case: Proxy, 7.2)
/// says proxies and patients must be told ahead of time; the numbers are Carry's.
pub const NOTICE_DAYS: [i64; 2] = [30, 7];

const DAY: i64 = 86_400;

/// Who decided that the proxy may have access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decider {
    /// The person themself.
    Person,
    /// A clinician or the person's practice.
    Practice,
    /// A court (the Court of Protection appointing a deputy, or another order).
    Court,
}

impl Decider {
    /// `person`, `practice` or `court`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decider::Person => "person",
            Decider::Practice => "practice",
            Decider::Court => "court",
        }
    }

    /// Parse a decider id.
    pub fn parse(s: &str) -> Result<Decider> {
        match s {
            "person" => Ok(Decider::Person),
            "practice" => Ok(Decider::Practice),
            "court" => Ok(Decider::Court),
            _ => Err(Error::invalid(format!(
                "unknown decider '{s}'; use person, practice or court"
            ))),
        }
    }
}

/// The terms of one proxy's access: what the rules are worked out from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// Why the proxy may act for the person.
    pub basis: BasisKind,
    /// Who decided it.
    pub decided_by: Decider,
    /// When access was granted (Unix seconds).
    pub granted_at: i64,
    /// When it ends (Unix seconds), if an end date was set.
    pub ends_at: Option<i64>,
    /// The child's date of birth, if the record is a child's. Reviews and the
    /// suspension at 16 apply to a child's record under parental responsibility.
    pub born: Option<Date>,
    /// When the proxy last used the access (Unix seconds), if ever.
    pub last_used_at: Option<i64>,
}

impl Terms {
    /// Whether the reviews and the suspension at 16 apply: a child's record (with a
    /// birth date) under parental responsibility.
    pub fn parental(&self) -> bool {
        self.basis == BasisKind::ParentalResponsibility && self.born.is_some()
    }

    /// When access is suspended (Unix seconds): the start of the child's 16th
    /// birthday, for parental access to a child's record; else `None`.
    pub fn suspension_at(&self) -> Option<i64> {
        if !self.parental() {
            return None;
        }
        self.born
            .and_then(|b| birthday(b, SUSPENSION_AGE))
            .map(midnight)
    }

    /// When access is removed for want of use (Unix seconds): [`UNUSED_LIMIT_YEARS`]
    /// calendar years after the last use, or after the grant if it was never used (or
    /// last used before this grant), at the same time of day. `None` if that is
    /// beyond the calendar's range.
    pub fn removal_at(&self) -> Option<i64> {
        let last = self
            .last_used_at
            .map_or(self.granted_at, |u| u.max(self.granted_at));
        years_after(last, UNUSED_LIMIT_YEARS)
    }
}

/// Why access is suspended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The child reached [`SUSPENSION_AGE`]: presumed to have capacity, the young
    /// person decides who sees their record from now on.
    Age,
}

/// Where a proxy's access stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "standing", rename_all = "lowercase")]
pub enum Standing {
    /// In force.
    Active,
    /// Not in force until someone decides again (new terms); not over.
    Suspended {
        /// Why.
        reason: Reason,
    },
    /// Over: the end date was reached.
    Ended,
    /// Over: unused for [`UNUSED_LIMIT_YEARS`] years.
    Removed,
}

/// Who a notice is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipient {
    /// The proxy who holds the access.
    Keeper,
    /// The person whose record it is (the young person, for a child's record).
    Person,
    /// Both of them.
    Both,
}

/// What a notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum NoticeKind {
    /// The child turned `age` (one of [`REVIEW_AGES`]): review the access.
    Review {
        /// The child's age now.
        age: u8,
    },
    /// Access will be suspended in `days_before` days (the 16th birthday).
    Suspension {
        /// Days until the suspension (one of [`NOTICE_DAYS`]).
        days_before: i64,
    },
    /// Access was suspended (the 16th birthday).
    Suspended,
    /// Access will end in `days_before` days.
    End {
        /// Days until the end (one of [`NOTICE_DAYS`]).
        days_before: i64,
    },
    /// Access ended.
    Ended,
    /// Access was removed for want of use.
    Removed,
}

impl NoticeKind {
    /// The order of notices given at the same moment.
    fn rank(self) -> u8 {
        match self {
            NoticeKind::Review { .. } => 0,
            NoticeKind::Suspension { .. } => 1,
            NoticeKind::Suspended => 2,
            NoticeKind::End { .. } => 3,
            NoticeKind::Ended => 4,
            NoticeKind::Removed => 5,
        }
    }
}

/// One thing to tell someone about a proxy's access, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Notice {
    /// When it is due (Unix seconds).
    pub at: i64,
    /// Who it is for.
    pub to: Recipient,
    /// What it says.
    #[serde(flatten)]
    pub kind: NoticeKind,
}

/// The date a child born on `born` turns `age`. Someone born on 29 February turns a
/// year older on 1 March in a common year (and on 29 February in a leap year), as in
/// UK law for reckoning age. `None` if the date is beyond the calendar's range.
pub fn birthday(born: Date, age: u8) -> Option<Date> {
    let year = born.year().checked_add(i32::from(age))?;
    match Date::from_calendar_date(year, born.month(), born.day()) {
        Ok(d) => Some(d),
        // Only 29 February fails in a year within range.
        Err(_) if born.month() == Month::February && born.day() == 29 => {
            Date::from_calendar_date(year, Month::March, 1).ok()
        }
        Err(_) => None,
    }
}

/// The start of `date` (midnight UTC), in Unix seconds.
pub fn midnight(date: Date) -> i64 {
    PrimitiveDateTime::new(date, Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp()
}

/// A birth date from FHIR text (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`, any time after it
/// ignored). A partial date stands for the first day of its year or month. `None` if
/// the text is not a FHIR date.
pub fn birth_date(text: &str) -> Option<Date> {
    let day = text.split_once('T').map_or(text, |(d, _)| d);
    let at = summary::parse_fhir_date(day.trim())?;
    OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .map(|t| t.date())
}

/// The dates a child born on `born` has their parental access looked at again: the
/// reviews at [`REVIEW_AGES`], then the suspension at [`SUSPENSION_AGE`]. Dates beyond
/// the calendar's range are left out.
pub fn review_dates(born: Date) -> Vec<Date> {
    REVIEW_AGES
        .iter()
        .chain(std::iter::once(&SUSPENSION_AGE))
        .filter_map(|&age| birthday(born, age))
        .collect()
}

/// Where `terms` stand at `now`. The end date, or removal for want of use, whichever
/// comes first (the end date if both fall together), is final: [`Standing::Ended`] or
/// [`Standing::Removed`] from that moment. Before it, parental access to a child's
/// record is [`Standing::Suspended`] from the 16th birthday, and otherwise
/// [`Standing::Active`]. A `now` before `granted_at` (a clock behind the grantor's) is
/// judged by the same rules.
pub fn standing(terms: &Terms, now: i64) -> Standing {
    if let Some((at, over)) = finish(terms) {
        if now >= at {
            return over;
        }
    }
    match terms.suspension_at() {
        Some(at) if now >= at => Standing::Suspended {
            reason: Reason::Age,
        },
        _ => Standing::Active,
    }
}

/// Every notice `terms` imply, in time order (notices at the same moment in the order
/// of [`NoticeKind`]'s variants):
///
/// - for parental access to a child's record: a review at each of [`REVIEW_AGES`] to
///   the keeper; the suspension [`NOTICE_DAYS`] days ahead, to both; the suspension
///   itself at [`SUSPENSION_AGE`], to both;
/// - with an end date: the end [`NOTICE_DAYS`] days ahead, to the keeper; the end
///   itself, to both;
/// - the removal for want of use, to both, as the last use stands in `terms`.
///
/// Only notices at or after `granted_at`; none after access ends or is removed (the
/// notice of that comes last).
pub fn notices(terms: &Terms) -> Vec<Notice> {
    let mut all = Vec::new();
    let mut add = |at: Option<i64>, to: Recipient, kind: NoticeKind| {
        if let Some(at) = at {
            all.push(Notice { at, to, kind });
        }
    };
    if let Some(born) = terms.born.filter(|_| terms.parental()) {
        for age in REVIEW_AGES {
            add(
                birthday(born, age).map(midnight),
                Recipient::Keeper,
                NoticeKind::Review { age },
            );
        }
    }
    if let Some(at) = terms.suspension_at() {
        for days in NOTICE_DAYS {
            add(
                days_before(at, days),
                Recipient::Both,
                NoticeKind::Suspension { days_before: days },
            );
        }
        add(Some(at), Recipient::Both, NoticeKind::Suspended);
    }
    if let Some(end) = terms.ends_at {
        for days in NOTICE_DAYS {
            add(
                days_before(end, days),
                Recipient::Keeper,
                NoticeKind::End { days_before: days },
            );
        }
        add(Some(end), Recipient::Both, NoticeKind::Ended);
    }
    add(terms.removal_at(), Recipient::Both, NoticeKind::Removed);

    let last = finish(terms).map(|(at, over)| {
        let kind = if over == Standing::Removed {
            NoticeKind::Removed
        } else {
            NoticeKind::Ended
        };
        (at, kind)
    });
    all.retain(|n| {
        n.at >= terms.granted_at
            && match last {
                Some((at, kind)) => n.at < at || (n.at == at && n.kind == kind),
                None => true,
            }
    });
    all.sort_by_key(|n| (n.at, n.kind.rank()));
    all
}

/// The notices of [`notices`] due in `(since, now]`: a caller that asks each time it
/// runs, passing the `now` of its previous run as `since`, gives each notice exactly
/// once however long it was away (and all that fell due meanwhile, in order).
pub fn due(terms: &Terms, since: i64, now: i64) -> Vec<Notice> {
    notices(terms)
        .into_iter()
        .filter(|n| n.at > since && n.at <= now)
        .collect()
}

/// When access is over, and how: the end date or removal, whichever is first (the end
/// date if both fall together).
fn finish(terms: &Terms) -> Option<(i64, Standing)> {
    match (terms.ends_at, terms.removal_at()) {
        (Some(end), Some(removal)) if removal < end => Some((removal, Standing::Removed)),
        (Some(end), _) => Some((end, Standing::Ended)),
        (None, Some(removal)) => Some((removal, Standing::Removed)),
        (None, None) => None,
    }
}

/// `days` days before `at`, if representable.
fn days_before(at: i64, days: i64) -> Option<i64> {
    at.checked_sub(days.checked_mul(DAY)?)
}

/// `years` calendar years after `at`, at the same time of day (29 February moving to
/// 1 March in a common year). `None` beyond the calendar's range.
fn years_after(at: i64, years: u8) -> Option<i64> {
    let t = OffsetDateTime::from_unix_timestamp(at).ok()?;
    let date = birthday(t.date(), years)?;
    Some(
        PrimitiveDateTime::new(date, t.time())
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use time::macros::{date, datetime};

    /// Unix seconds of a UTC date-time literal.
    fn t(dt: PrimitiveDateTime) -> i64 {
        dt.assume_utc().unix_timestamp()
    }

    /// Unix seconds of the start of a date literal.
    fn day(d: Date) -> i64 {
        t(PrimitiveDateTime::new(d, Time::MIDNIGHT))
    }

    fn n(at: i64, to: Recipient, kind: NoticeKind) -> Notice {
        Notice { at, to, kind }
    }

    use NoticeKind::{End, Ended, Removed, Review, Suspended, Suspension};
    use Recipient::{Both, Keeper};

    const SUSPENDED: Standing = Standing::Suspended {
        reason: Reason::Age,
    };

    fn parental(born: Date, granted_at: i64) -> Terms {
        Terms {
            basis: BasisKind::ParentalResponsibility,
            decided_by: Decider::Practice,
            granted_at,
            ends_at: None,
            born: Some(born),
            last_used_at: None,
        }
    }

    /// Step the clock through `steps` (ascending), as an app would open at each of
    /// them: the standing and the notices due since the previous step, at each. The
    /// keeper uses the access on the 1st of each month at 08:00 while it is active
    /// (`monthly`), which the terms record as their last use.
    fn walk(mut terms: Terms, steps: &[i64], monthly: bool) -> Vec<(i64, Standing, Vec<Notice>)> {
        let mut out = Vec::new();
        let mut since = terms.granted_at;
        for &now in steps {
            if monthly {
                let today = OffsetDateTime::from_unix_timestamp(now).unwrap();
                let used = t(PrimitiveDateTime::new(
                    today.date(),
                    time::macros::time!(8:00),
                ));
                if today.day() == 1 && used <= now && standing(&terms, used) == Standing::Active {
                    terms.last_used_at = Some(used);
                }
            }
            out.push((now, standing(&terms, now), due(&terms, since, now)));
            since = now;
        }
        out
    }

    /// Every day from `from` to `to` inclusive, at 09:00 UTC.
    fn days(from: Date, to: Date) -> Vec<i64> {
        let mut out = Vec::new();
        let mut d = from;
        while d <= to {
            out.push(t(PrimitiveDateTime::new(d, time::macros::time!(9:00))));
            d = d.next_day().unwrap();
        }
        out
    }

    /// Check a walk against a table of rows, and every step not in the table against
    /// `otherwise` (no notices, and the standing it gives). Every row must be a step.
    fn check(
        walked: &[(i64, Standing, Vec<Notice>)],
        table: &[(i64, Standing, Vec<Notice>)],
        otherwise: impl Fn(i64) -> Standing,
    ) {
        let rows: BTreeMap<i64, (Standing, Vec<Notice>)> = table
            .iter()
            .map(|(at, s, ns)| (*at, (*s, ns.clone())))
            .collect();
        assert_eq!(rows.len(), table.len(), "a time appears twice in the table");
        let mut seen = 0;
        for (now, s, ns) in walked {
            let when = crate::time::rfc3339(*now);
            match rows.get(now) {
                Some((want_s, want_ns)) => {
                    seen += 1;
                    assert_eq!(s, want_s, "standing at {when}");
                    assert_eq!(ns, want_ns, "notices due at {when}");
                }
                None => {
                    assert_eq!(*s, otherwise(*now), "standing at {when}");
                    assert!(ns.is_empty(), "unexpected notices at {when}: {ns:?}");
                }
            }
        }
        assert_eq!(seen, table.len(), "every table row is a step of the walk");
    }

    #[test]
    fn a_childs_parental_access_from_birth_to_18() {
        // Born 20 May 2010; a parent holds access from birth, with no end date, and
        // uses it monthly. The app opens every day at 09:00.
        let born = date!(2010 - 05 - 20);
        let terms = parental(born, day(born));
        let at9 = |d: Date| t(PrimitiveDateTime::new(d, time::macros::time!(9:00)));
        let table = vec![
            (at9(date!(2010 - 05 - 20)), Standing::Active, vec![]),
            (at9(date!(2021 - 05 - 19)), Standing::Active, vec![]),
            (
                at9(date!(2021 - 05 - 20)),
                Standing::Active,
                vec![n(day(date!(2021 - 05 - 20)), Keeper, Review { age: 11 })],
            ),
            (at9(date!(2021 - 05 - 21)), Standing::Active, vec![]),
            (at9(date!(2023 - 05 - 19)), Standing::Active, vec![]),
            (
                at9(date!(2023 - 05 - 20)),
                Standing::Active,
                vec![n(day(date!(2023 - 05 - 20)), Keeper, Review { age: 13 })],
            ),
            (at9(date!(2023 - 05 - 21)), Standing::Active, vec![]),
            (at9(date!(2026 - 04 - 19)), Standing::Active, vec![]),
            (
                at9(date!(2026 - 04 - 20)),
                Standing::Active,
                vec![n(
                    day(date!(2026 - 04 - 20)),
                    Both,
                    Suspension { days_before: 30 },
                )],
            ),
            (at9(date!(2026 - 04 - 21)), Standing::Active, vec![]),
            (at9(date!(2026 - 05 - 12)), Standing::Active, vec![]),
            (
                at9(date!(2026 - 05 - 13)),
                Standing::Active,
                vec![n(
                    day(date!(2026 - 05 - 13)),
                    Both,
                    Suspension { days_before: 7 },
                )],
            ),
            (at9(date!(2026 - 05 - 14)), Standing::Active, vec![]),
            (at9(date!(2026 - 05 - 19)), Standing::Active, vec![]),
            (
                at9(date!(2026 - 05 - 20)),
                SUSPENDED,
                vec![n(day(date!(2026 - 05 - 20)), Both, Suspended)],
            ),
            (at9(date!(2026 - 05 - 21)), SUSPENDED, vec![]),
            (at9(date!(2028 - 05 - 19)), SUSPENDED, vec![]),
            (at9(date!(2028 - 05 - 20)), SUSPENDED, vec![]),
        ];
        let walked = walk(
            terms,
            &days(date!(2010 - 05 - 20), date!(2028 - 05 - 20)),
            true,
        );
        let sixteen = day(date!(2026 - 05 - 20));
        check(&walked, &table, |now| {
            if now < sixteen {
                Standing::Active
            } else {
                SUSPENDED
            }
        });
        // The exact moments: the suspension starts at midnight of the birthday.
        let mut terms = parental(born, day(born));
        terms.last_used_at = Some(t(datetime!(2026 - 05 - 01 8:00)));
        assert_eq!(
            standing(&terms, t(datetime!(2026 - 05 - 19 23:59:59))),
            Standing::Active
        );
        assert_eq!(
            standing(&terms, t(datetime!(2026 - 05 - 20 0:00))),
            SUSPENDED
        );
    }

    #[test]
    fn a_lasting_power_of_attorney_from_grant_to_end() {
        // Granted 10 March 2024 at 14:30, for three years, used monthly.
        let granted = t(datetime!(2024 - 03 - 10 14:30));
        let end = t(datetime!(2027 - 03 - 10 14:30));
        let terms = Terms {
            basis: BasisKind::LastingPowerOfAttorney,
            decided_by: Decider::Person,
            granted_at: granted,
            ends_at: Some(end),
            born: None,
            last_used_at: None,
        };
        let table = vec![
            (granted, Standing::Active, vec![]),
            (
                t(datetime!(2027 - 02 - 08 14:29:59)),
                Standing::Active,
                vec![],
            ),
            (
                t(datetime!(2027 - 02 - 08 14:30)),
                Standing::Active,
                vec![n(
                    t(datetime!(2027 - 02 - 08 14:30)),
                    Keeper,
                    End { days_before: 30 },
                )],
            ),
            (
                t(datetime!(2027 - 02 - 08 14:30:01)),
                Standing::Active,
                vec![],
            ),
            (
                t(datetime!(2027 - 03 - 03 14:30)),
                Standing::Active,
                vec![n(
                    t(datetime!(2027 - 03 - 03 14:30)),
                    Keeper,
                    End { days_before: 7 },
                )],
            ),
            (
                t(datetime!(2027 - 03 - 10 14:29:59)),
                Standing::Active,
                vec![],
            ),
            (
                t(datetime!(2027 - 03 - 10 14:30)),
                Standing::Ended,
                vec![n(t(datetime!(2027 - 03 - 10 14:30)), Both, Ended)],
            ),
            (
                t(datetime!(2027 - 03 - 10 14:30:01)),
                Standing::Ended,
                vec![],
            ),
        ];
        let mut steps = days(date!(2024 - 03 - 11), date!(2028 - 03 - 10));
        steps.extend(table.iter().map(|r| r.0));
        steps.sort_unstable();
        steps.dedup();
        let walked = walk(terms, &steps, true);
        let ended = t(datetime!(2027 - 03 - 10 14:30));
        check(&walked, &table, |now| {
            if now < ended {
                Standing::Active
            } else {
                Standing::Ended
            }
        });
    }

    #[test]
    fn access_never_used_is_removed_at_five_years() {
        // Granted 10 March 2024 at 14:30 with no end date, never used.
        let granted = t(datetime!(2024 - 03 - 10 14:30));
        let terms = Terms {
            basis: BasisKind::LastingPowerOfAttorney,
            decided_by: Decider::Person,
            granted_at: granted,
            ends_at: None,
            born: None,
            last_used_at: None,
        };
        let table = vec![
            (granted, Standing::Active, vec![]),
            (
                t(datetime!(2029 - 03 - 10 14:29:59)),
                Standing::Active,
                vec![],
            ),
            (
                t(datetime!(2029 - 03 - 10 14:30)),
                Standing::Removed,
                vec![n(t(datetime!(2029 - 03 - 10 14:30)), Both, Removed)],
            ),
            (
                t(datetime!(2029 - 03 - 10 14:30:01)),
                Standing::Removed,
                vec![],
            ),
        ];
        let mut steps = days(date!(2024 - 03 - 11), date!(2030 - 03 - 10));
        steps.extend(table.iter().map(|r| r.0));
        steps.sort_unstable();
        steps.dedup();
        let walked = walk(terms.clone(), &steps, false);
        let removed = t(datetime!(2029 - 03 - 10 14:30));
        check(&walked, &table, |now| {
            if now < removed {
                Standing::Active
            } else {
                Standing::Removed
            }
        });

        // When removal comes, given the grant, the last use and the end date.
        #[allow(clippy::type_complexity)]
        let cases: [(i64, Option<i64>, Option<i64>, Option<i64>, Vec<Notice>); 5] = [
            // Used once, 1 June 2025 at 08:15: removed 1 June 2030 at 08:15.
            (
                granted,
                Some(t(datetime!(2025 - 06 - 01 8:15))),
                None,
                Some(t(datetime!(2030 - 06 - 01 8:15))),
                vec![n(t(datetime!(2030 - 06 - 01 8:15)), Both, Removed)],
            ),
            // Granted on 29 February 2024, never used: 1 March 2029.
            (
                t(datetime!(2024 - 02 - 29 10:00)),
                None,
                None,
                Some(t(datetime!(2029 - 03 - 01 10:00))),
                vec![n(t(datetime!(2029 - 03 - 01 10:00)), Both, Removed)],
            ),
            // Ends after 3 years, never used: it ends before it would be removed.
            (
                granted,
                None,
                Some(t(datetime!(2027 - 03 - 10 14:30))),
                Some(t(datetime!(2029 - 03 - 10 14:30))),
                vec![
                    n(
                        t(datetime!(2027 - 02 - 08 14:30)),
                        Keeper,
                        End { days_before: 30 },
                    ),
                    n(
                        t(datetime!(2027 - 03 - 03 14:30)),
                        Keeper,
                        End { days_before: 7 },
                    ),
                    n(t(datetime!(2027 - 03 - 10 14:30)), Both, Ended),
                ],
            ),
            // Ends after 6 years, never used: removed at 5, so no notice of the end.
            (
                granted,
                None,
                Some(t(datetime!(2030 - 03 - 10 14:30))),
                Some(t(datetime!(2029 - 03 - 10 14:30))),
                vec![n(t(datetime!(2029 - 03 - 10 14:30)), Both, Removed)],
            ),
            // Ends exactly when it would be removed: the end date wins.
            (
                granted,
                None,
                Some(t(datetime!(2029 - 03 - 10 14:30))),
                Some(t(datetime!(2029 - 03 - 10 14:30))),
                vec![
                    n(
                        t(datetime!(2029 - 02 - 08 14:30)),
                        Keeper,
                        End { days_before: 30 },
                    ),
                    n(
                        t(datetime!(2029 - 03 - 03 14:30)),
                        Keeper,
                        End { days_before: 7 },
                    ),
                    n(t(datetime!(2029 - 03 - 10 14:30)), Both, Ended),
                ],
            ),
        ];
        for (i, (granted_at, used, ends_at, removal, want)) in cases.into_iter().enumerate() {
            let terms = Terms {
                granted_at,
                last_used_at: used,
                ends_at,
                ..terms.clone()
            };
            assert_eq!(terms.removal_at(), removal, "case {i}");
            assert_eq!(notices(&terms), want, "case {i}");
        }
    }

    #[test]
    fn due_gives_each_notice_once_at_irregular_intervals() {
        let born = date!(2010 - 05 - 20);
        let granted = day(born);
        // Last used 1 May 2026: removed 1 May 2031.
        let mut child = parental(born, granted);
        child.last_used_at = Some(t(datetime!(2026 - 05 - 01 8:00)));
        let want_child = vec![
            n(day(date!(2021 - 05 - 20)), Keeper, Review { age: 11 }),
            n(day(date!(2023 - 05 - 20)), Keeper, Review { age: 13 }),
            n(
                day(date!(2026 - 04 - 20)),
                Both,
                Suspension { days_before: 30 },
            ),
            n(
                day(date!(2026 - 05 - 13)),
                Both,
                Suspension { days_before: 7 },
            ),
            n(day(date!(2026 - 05 - 20)), Both, Suspended),
            n(t(datetime!(2031 - 05 - 01 8:00)), Both, Removed),
        ];
        assert_eq!(notices(&child), want_child);
        // The same child, with access ending on 1 June 2026.
        let mut ending = child.clone();
        ending.ends_at = Some(day(date!(2026 - 06 - 01)));
        let want_ending = vec![
            n(day(date!(2021 - 05 - 20)), Keeper, Review { age: 11 }),
            n(day(date!(2023 - 05 - 20)), Keeper, Review { age: 13 }),
            n(
                day(date!(2026 - 04 - 20)),
                Both,
                Suspension { days_before: 30 },
            ),
            n(day(date!(2026 - 05 - 02)), Keeper, End { days_before: 30 }),
            n(
                day(date!(2026 - 05 - 13)),
                Both,
                Suspension { days_before: 7 },
            ),
            n(day(date!(2026 - 05 - 20)), Both, Suspended),
            n(day(date!(2026 - 05 - 25)), Keeper, End { days_before: 7 }),
            n(day(date!(2026 - 06 - 01)), Both, Ended),
        ];
        assert_eq!(notices(&ending), want_ending);

        let stop = t(datetime!(2035 - 01 - 01 0:00));
        for (terms, want) in [(&child, &want_child), (&ending, &want_ending)] {
            for (offset, gaps) in [
                (0, [DAY, 17 * DAY, 400 * DAY]),
                (3_600 + 7, [400 * DAY, DAY, 17 * DAY]),
                (-1, [17 * DAY + 1, 400 * DAY - 1, DAY]),
            ] {
                let mut got = Vec::new();
                let mut since = granted + offset;
                for gap in gaps.iter().cycle() {
                    let now = since + gap;
                    got.extend(due(terms, since, now));
                    if now > stop {
                        break;
                    }
                    since = now;
                }
                assert_eq!(&got, want, "offset {offset}, gaps {gaps:?}");
            }
            // Asked once for everything; asked for nothing; asked backwards.
            assert_eq!(&due(terms, granted - 1, stop), want);
            assert!(due(terms, stop, stop).is_empty());
            assert!(due(terms, stop, granted).is_empty());
        }
    }

    #[test]
    fn birthdays_on_29_february() {
        let table = [
            (date!(2012 - 02 - 29), 1, Some(date!(2013 - 03 - 01))),
            (date!(2012 - 02 - 29), 4, Some(date!(2016 - 02 - 29))),
            (date!(2012 - 02 - 29), 11, Some(date!(2023 - 03 - 01))),
            (date!(2012 - 02 - 29), 16, Some(date!(2028 - 02 - 29))),
            // 2100 is not a leap year.
            (date!(2084 - 02 - 29), 16, Some(date!(2100 - 03 - 01))),
            (date!(2011 - 02 - 28), 1, Some(date!(2012 - 02 - 28))),
            (date!(2011 - 03 - 01), 1, Some(date!(2012 - 03 - 01))),
            (date!(9990 - 01 - 01), 16, None),
            (Date::MAX, 1, None),
            (Date::MIN, 0, Some(Date::MIN)),
        ];
        for (born, age, want) in table {
            assert_eq!(birthday(born, age), want, "{born} + {age}");
        }

        // Born 29 February 2012: reviews on 1 March in common years; the 16th
        // birthday falls on 29 February 2028, a leap year.
        let born = date!(2012 - 02 - 29);
        let terms = parental(born, day(born));
        let mut used = terms.clone();
        used.last_used_at = Some(day(date!(2028 - 02 - 01)));
        assert_eq!(
            notices(&used),
            vec![
                n(day(date!(2023 - 03 - 01)), Keeper, Review { age: 11 }),
                n(day(date!(2025 - 03 - 01)), Keeper, Review { age: 13 }),
                n(
                    day(date!(2028 - 01 - 30)),
                    Both,
                    Suspension { days_before: 30 }
                ),
                n(
                    day(date!(2028 - 02 - 22)),
                    Both,
                    Suspension { days_before: 7 }
                ),
                n(day(date!(2028 - 02 - 29)), Both, Suspended),
                n(day(date!(2033 - 02 - 01)), Both, Removed),
            ]
        );
        assert!(due(
            &used,
            day(date!(2023 - 02 - 27)),
            day(date!(2023 - 02 - 28))
        )
        .is_empty());
        assert_eq!(
            standing(&used, day(date!(2028 - 02 - 28))),
            Standing::Active
        );
        assert_eq!(standing(&used, day(date!(2028 - 02 - 29))), SUSPENDED);

        // Born 29 February 2008: 16 on 29 February 2024; and 2100's case.
        let mut t2008 = parental(date!(2008 - 02 - 29), day(date!(2008 - 02 - 29)));
        t2008.last_used_at = Some(day(date!(2024 - 01 - 01)));
        assert_eq!(t2008.suspension_at(), Some(day(date!(2024 - 02 - 29))));
        let t2084 = parental(date!(2084 - 02 - 29), day(date!(2084 - 02 - 29)));
        assert_eq!(t2084.suspension_at(), Some(day(date!(2100 - 03 - 01))));
    }

    #[test]
    fn a_grant_made_at_14_has_no_reviews_and_is_suspended_at_16() {
        let born = date!(2010 - 05 - 20);
        let mut terms = parental(born, t(datetime!(2024 - 08 - 01 12:00)));
        terms.last_used_at = Some(t(datetime!(2026 - 05 - 01 8:00)));
        assert_eq!(
            notices(&terms),
            vec![
                n(
                    day(date!(2026 - 04 - 20)),
                    Both,
                    Suspension { days_before: 30 }
                ),
                n(
                    day(date!(2026 - 05 - 13)),
                    Both,
                    Suspension { days_before: 7 }
                ),
                n(day(date!(2026 - 05 - 20)), Both, Suspended),
                n(t(datetime!(2031 - 05 - 01 8:00)), Both, Removed),
            ]
        );
        let table = [
            (t(datetime!(2024 - 08 - 01 12:00)), Standing::Active),
            (t(datetime!(2026 - 05 - 19 23:59:59)), Standing::Active),
            (t(datetime!(2026 - 05 - 20 0:00)), SUSPENDED),
            (t(datetime!(2031 - 05 - 01 7:59:59)), SUSPENDED),
            (t(datetime!(2031 - 05 - 01 8:00)), Standing::Removed),
        ];
        for (now, want) in table {
            assert_eq!(standing(&terms, now), want, "{}", crate::time::rfc3339(now));
        }
    }

    #[test]
    fn a_parental_grant_made_at_16_or_later_is_suspended_at_once() {
        let born = date!(2010 - 05 - 20);
        let granted = t(datetime!(2027 - 01 - 01 12:00));
        let terms = parental(born, granted);
        assert_eq!(standing(&terms, granted), SUSPENDED);
        // Made on the 16th birthday itself.
        let on_the_day = parental(born, day(date!(2026 - 05 - 20)));
        assert_eq!(standing(&on_the_day, day(date!(2026 - 05 - 20))), SUSPENDED);
        // Nothing before the grant is announced; never used, it is removed at 5
        // years like any other.
        assert_eq!(
            notices(&terms),
            vec![n(t(datetime!(2032 - 01 - 01 12:00)), Both, Removed)]
        );
        assert_eq!(
            standing(&terms, t(datetime!(2032 - 01 - 01 12:00))),
            Standing::Removed
        );
    }

    #[test]
    fn only_parental_access_to_a_childs_record_is_reviewed_and_suspended() {
        let born = date!(2010 - 05 - 20);
        let used = Some(t(datetime!(2026 - 05 - 01 8:00)));
        let table = [
            (BasisKind::ParentalResponsibility, Some(born), 6),
            (BasisKind::PatientChoice, Some(born), 1),
            (BasisKind::CourtDeputy, Some(born), 1),
            (BasisKind::BestInterests, Some(born), 1),
            (BasisKind::LastingPowerOfAttorney, None, 1),
            // Parental responsibility named, but no birth date: not a child's record.
            (BasisKind::ParentalResponsibility, None, 1),
        ];
        for (basis, born, count) in table {
            let terms = Terms {
                basis,
                decided_by: Decider::Practice,
                granted_at: day(date!(2010 - 05 - 20)),
                ends_at: None,
                born,
                last_used_at: used,
            };
            assert_eq!(notices(&terms).len(), count, "{basis:?} {born:?}");
            let at_17 = standing(&terms, day(date!(2027 - 05 - 20)));
            let want = if count == 6 {
                SUSPENDED
            } else {
                Standing::Active
            };
            assert_eq!(at_17, want, "{basis:?} {born:?}");
        }
    }

    #[test]
    fn extreme_inputs_do_not_panic() {
        let instants = [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX - 1, i64::MAX];
        let dates = [
            None,
            Some(Date::MIN),
            Some(Date::MAX),
            Some(date!(2000 - 02 - 29)),
        ];
        for granted_at in instants {
            for ends_at in [None, Some(i64::MIN), Some(0), Some(i64::MAX)] {
                for born in dates {
                    for last_used_at in [None, Some(i64::MIN), Some(i64::MAX)] {
                        let terms = Terms {
                            basis: BasisKind::ParentalResponsibility,
                            decided_by: Decider::Court,
                            granted_at,
                            ends_at,
                            born,
                            last_used_at,
                        };
                        for now in instants {
                            let _ = standing(&terms, now);
                            let _ = due(&terms, now, i64::MAX);
                        }
                        let all = notices(&terms);
                        assert!(all.windows(2).all(|w| w[0].at <= w[1].at));
                        assert!(all.iter().all(|n| n.at >= granted_at));
                    }
                }
            }
        }
    }

    #[test]
    fn birth_dates_and_review_dates() {
        let table = [
            ("2014-03-05", Some(date!(2014 - 03 - 05))),
            ("2014-03", Some(date!(2014 - 03 - 01))),
            ("2014", Some(date!(2014 - 01 - 01))),
            ("2014-03-05T10:00:00Z", Some(date!(2014 - 03 - 05))),
            ("2013-02-29", None),
            ("March 2014", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(birth_date(text), want, "{text}");
        }
        assert_eq!(
            review_dates(date!(2012 - 02 - 29)),
            vec![
                date!(2023 - 03 - 01),
                date!(2025 - 03 - 01),
                date!(2028 - 02 - 29)
            ]
        );
        assert_eq!(
            review_dates(date!(9985 - 06 - 01)),
            vec![date!(9996 - 06 - 01), date!(9998 - 06 - 01)]
        );
    }

    #[test]
    fn names_in_json() {
        let cases = [
            (
                serde_json::to_value(n(5, Keeper, Review { age: 11 })).unwrap(),
                serde_json::json!({"at": 5, "to": "keeper", "kind": "review", "age": 11}),
            ),
            (
                serde_json::to_value(n(6, Both, Suspension { days_before: 7 })).unwrap(),
                serde_json::json!({"at": 6, "to": "both", "kind": "suspension", "days_before": 7}),
            ),
            (
                serde_json::to_value(SUSPENDED).unwrap(),
                serde_json::json!({"standing": "suspended", "reason": "age"}),
            ),
            (
                serde_json::to_value(Standing::Removed).unwrap(),
                serde_json::json!({"standing": "removed"}),
            ),
            (
                serde_json::to_value([Decider::Person, Decider::Practice, Decider::Court]).unwrap(),
                serde_json::json!(["person", "practice", "court"]),
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
        let back: Notice = serde_json::from_value(
            serde_json::json!({"at": 6, "to": "both", "kind": "suspension", "days_before": 7}),
        )
        .unwrap();
        assert_eq!(back, n(6, Both, Suspension { days_before: 7 }));
        for d in [Decider::Person, Decider::Practice, Decider::Court] {
            assert_eq!(Decider::parse(d.as_str()).unwrap(), d);
        }
        assert!(Decider::parse("parent").is_err());
    }
}
