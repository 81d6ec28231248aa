//! Where a pull is: saved with each page, in the same transaction, so a run killed
//! halfway resumes where it stopped.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::error::Result;

/// Where a run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    /// `everything`, `by-type` or `plain`.
    pub mode: String,
    /// The run's number; resources seen in a full run carry it.
    pub run: i64,
    /// Whether this run lists everything the source holds.
    pub full: bool,
    /// Changes after this instant (`everything` mode, and the fallback for a type
    /// without its own checkpoint).
    pub since: Option<String>,
    /// The step: 0 reads the Patient, then one per entry of `types`.
    pub type_index: i64,
    /// The next page's URL exactly as the server gave it, or none to start the step.
    pub next_url: Option<String>,
    /// The newest `lastUpdated` seen: in the run (`everything`) or in the step.
    pub newest: Option<String>,
    /// Resources received in this run.
    pub fetched: i64,
    /// The types this run searches, fixed when it starts.
    pub types: Vec<String>,
    /// What the current search's first page said it matched, if it said.
    pub step_total: Option<i64>,
    /// What the current search's pages have delivered so far.
    pub step_got: i64,
    /// Why the run is partial: each search that delivered less than it promised.
    pub short: Vec<String>,
    /// Resources refused because they belong to another patient.
    pub refused: i64,
    /// The shared resources (`Type/id`) the run's resources refer to.
    pub refs: std::collections::BTreeSet<String>,
}

impl Checkpoint {
    /// The type the current step lists (step 0 is the Patient), if it lists one.
    pub fn step_type(&self) -> Option<&str> {
        if self.mode == "everything" {
            return None;
        }
        if self.type_index == 0 {
            return Some("Patient");
        }
        let i = usize::try_from(self.type_index - 1).ok()?;
        self.types.get(i).map(String::as_str)
    }
}

fn json_list(text: Option<String>) -> Vec<String> {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// The checkpoint of a run in flight for `source_id`, if there is one.
pub(crate) fn load(c: &Connection, source_id: i64) -> Result<Option<Checkpoint>> {
    Ok(c.query_row(
        "SELECT mode, run, full, since, type_index, next_url, newest, fetched, types,
                step_total, step_got, short, refused, refs
         FROM sync_checkpoints WHERE source_id = ?1",
        [source_id],
        |r| {
            Ok(Checkpoint {
                mode: r.get(0)?,
                run: r.get(1)?,
                full: r.get(2)?,
                since: r.get(3)?,
                type_index: r.get(4)?,
                next_url: r.get(5)?,
                newest: r.get(6)?,
                fetched: r.get(7)?,
                types: json_list(r.get(8)?),
                step_total: r.get(9)?,
                step_got: r.get(10)?,
                short: json_list(r.get(11)?),
                refused: r.get(12)?,
                refs: json_list(r.get(13)?).into_iter().collect(),
            })
        },
    )
    .optional()?)
}

/// Save `c` as the checkpoint of `source_id`.
pub(crate) fn save(tx: &Transaction<'_>, source_id: i64, c: &Checkpoint) -> Result<()> {
    let types = serde_json::to_string(&c.types)?;
    let short = serde_json::to_string(&c.short)?;
    let refs = serde_json::to_string(&c.refs)?;
    tx.execute(
        "INSERT INTO sync_checkpoints (source_id, mode, run, full, since, type_index, next_url,
           newest, fetched, types, step_total, step_got, short, refused, refs)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
         ON CONFLICT (source_id) DO UPDATE SET mode = excluded.mode, run = excluded.run,
           full = excluded.full, since = excluded.since, type_index = excluded.type_index,
           next_url = excluded.next_url, newest = excluded.newest, fetched = excluded.fetched,
           types = excluded.types, step_total = excluded.step_total,
           step_got = excluded.step_got, short = excluded.short, refused = excluded.refused,
           refs = excluded.refs",
        params![
            source_id,
            c.mode,
            c.run,
            c.full,
            c.since,
            c.type_index,
            c.next_url,
            c.newest,
            c.fetched,
            types,
            c.step_total,
            c.step_got,
            short,
            c.refused,
            refs
        ],
    )?;
    Ok(())
}
