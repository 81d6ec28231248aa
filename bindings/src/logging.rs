//! Forwarding the core's logs to the app's [`Logger`]. The core logs counts and
//! states, never health data, keys or tokens. Records are queued and delivered from
//! a thread of their own, so the app is never called while a store lock is held.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, OnceLock, RwLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::error::{CarryError, Result};

/// How much to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, uniffi::Enum)]
pub enum LogLevel {
    /// Failures only.
    Error,
    /// Failures and warnings.
    Warn,
    /// Also notable events (imports, migrations).
    Info,
    /// Also details for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    fn of(level: &Level) -> LogLevel {
        match *level {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            Level::DEBUG => LogLevel::Debug,
            Level::TRACE => LogLevel::Trace,
        }
    }
}

/// Receives the core's log records. Messages never contain health data.
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    /// One log record: its level, the module it came from, and the message.
    fn log(&self, level: LogLevel, target: String, message: String);
}

struct Record {
    level: LogLevel,
    target: String,
    message: String,
}

static LOGGER: RwLock<Option<Arc<dyn Logger>>> = RwLock::new(None);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static QUEUE: OnceLock<SyncSender<Record>> = OnceLock::new();

struct Forward;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = LogLevel::of(event.metadata().level());
        if level as u8 > MAX_LEVEL.load(Ordering::Relaxed) {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if let Some(q) = QUEUE.get() {
            // A full queue drops the record rather than block the core.
            let _ = q.try_send(Record {
                level,
                target: event.metadata().target().to_string(),
                message: message.0,
            });
        }
    }
}

/// Send the core's logs at `max_level` and above to `logger`. Call once at start-up;
/// a later call replaces the logger and the level.
#[uniffi::export]
pub fn set_logger(logger: Arc<dyn Logger>, max_level: LogLevel) -> Result<()> {
    MAX_LEVEL.store(max_level as u8, Ordering::Relaxed);
    *LOGGER.write().unwrap_or_else(|p| p.into_inner()) = Some(logger);
    if QUEUE.get().is_some() {
        return Ok(());
    }
    let (sender, receiver) = mpsc::sync_channel::<Record>(1024);
    std::thread::Builder::new()
        .name("carry-log".into())
        .spawn(move || {
            for r in receiver {
                let logger = LOGGER.read().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(l) = logger {
                    l.log(r.level, r.target, r.message);
                }
            }
        })
        .map_err(|e| CarryError::Internal {
            reason: format!("could not start the log thread: {e}"),
        })?;
    let _ = QUEUE.set(sender);
    let subscriber = tracing_subscriber::registry().with(Forward);
    tracing::subscriber::set_global_default(subscriber).map_err(|_| CarryError::Internal {
        reason: "another logger is already installed in this process".into(),
    })
}
