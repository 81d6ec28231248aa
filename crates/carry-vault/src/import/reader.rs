//! Readers for import files: one counts the bytes read through it, for progress
//! reports; one checks that they are UTF-8 and remembers where they stop being so.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A byte count shared between the thread that reads a file and the one that reports
/// progress.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Wraps a reader and adds every byte read to a [`Counter`].
pub struct CountingReader<R> {
    inner: R,
    counter: Counter,
}

impl<R> CountingReader<R> {
    pub fn new(inner: R, counter: Counter) -> Self {
        CountingReader { inner, counter }
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Where a file stopped being UTF-8 (the offset of its first bad byte), once a
/// [`Utf8Reader`] over it has seen it. Shared by every reader of one import, on
/// whichever thread.
/// It holds the offset plus one, and 0 while every byte read was UTF-8.
#[derive(Clone, Default)]
pub struct NotUtf8(Arc<AtomicU64>);

impl NotUtf8 {
    /// The offset of the first byte that is not part of a UTF-8 character, if one
    /// was read.
    pub fn at(&self) -> Option<u64> {
        self.0.load(Ordering::Relaxed).checked_sub(1)
    }

    fn found(&self, offset: u64) {
        // The first one found is kept.
        let _ = self.0.compare_exchange(
            0,
            offset.saturating_add(1),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// Wraps a reader and fails the read that brings a byte which cannot be UTF-8,
/// noting its offset in a [`NotUtf8`]. A character split between two reads is
/// checked whole.
pub struct Utf8Reader<R> {
    inner: R,
    /// Bytes read and found to be UTF-8, or the start of a character still to come.
    checked: u64,
    /// The start of a character whose last bytes have not been read yet.
    pending: Vec<u8>,
    bad: NotUtf8,
}

impl<R> Utf8Reader<R> {
    pub fn new(inner: R, bad: NotUtf8) -> Self {
        Utf8Reader {
            inner,
            checked: 0,
            pending: Vec::with_capacity(4),
            bad,
        }
    }

    fn fail(&self, offset: u64) -> std::io::Error {
        self.bad.found(offset);
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text at byte {offset}"),
        )
    }

    /// Check `bytes`, which follow what was checked so far.
    fn check(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut rest = bytes;
        // Finish a character begun in the last read.
        while !self.pending.is_empty() {
            let Some((&b, tail)) = rest.split_first() else {
                return Ok(());
            };
            self.pending.push(b);
            rest = tail;
            match std::str::from_utf8(&self.pending) {
                Ok(_) => {
                    self.checked += self.pending.len() as u64;
                    self.pending.clear();
                }
                Err(e) if e.error_len().is_some() => return Err(self.fail(self.checked)),
                Err(_) => {}
            }
        }
        match std::str::from_utf8(rest) {
            Ok(_) => {
                self.checked += rest.len() as u64;
                Ok(())
            }
            Err(e) => {
                let good = e.valid_up_to();
                self.checked += good as u64;
                match e.error_len() {
                    Some(_) => Err(self.fail(self.checked)),
                    // The last character goes on in the next read.
                    None => {
                        self.pending.extend_from_slice(&rest[good..]);
                        Ok(())
                    }
                }
            }
        }
    }
}

impl<R: Read> Read for Utf8Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if self.pending.is_empty() {
                return Ok(0);
            }
            // The file ends inside a character.
            return Err(self.fail(self.checked));
        }
        self.check(&buf[..n])?;
        Ok(n)
    }
}

/// An import file opened for reading: checked as UTF-8, and counted.
pub type FileReader = CountingReader<Utf8Reader<File>>;

/// Open `path` for an import that counts into `counter` and notes bad bytes in `bad`.
pub fn open(path: &Path, counter: Counter, bad: NotUtf8) -> std::io::Result<FileReader> {
    Ok(CountingReader::new(
        Utf8Reader::new(File::open(path)?, bad),
        counter,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read `bytes` through a checker `step` bytes at a time.
    fn read_in_steps(bytes: &[u8], step: usize) -> (std::io::Result<Vec<u8>>, Option<u64>) {
        struct Steps<'a>(&'a [u8], usize);
        impl Read for Steps<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.1.min(self.0.len()).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let bad = NotUtf8::default();
        let mut r = Utf8Reader::new(Steps(bytes, step), bad.clone());
        let mut out = Vec::new();
        let res = r.read_to_end(&mut out).map(|_| out);
        (res, bad.at())
    }

    #[test]
    fn utf8_split_anywhere_passes_and_a_bad_byte_is_found_where_it_is() {
        let good = "{\"name\": \"Zoë 山田 👨\u{200d}👩\u{200d}👧\"}".as_bytes();
        for step in 1..=7 {
            let (res, at) = read_in_steps(good, step);
            assert_eq!(res.unwrap(), good, "step {step}");
            assert_eq!(at, None);
        }
        let mut bad = good.to_vec();
        bad[10] = 0xff;
        for step in 1..=7 {
            let (res, at) = read_in_steps(&bad, step);
            assert!(res.is_err(), "step {step}");
            assert_eq!(at, Some(10), "step {step}");
        }
        // The second byte of "ë" changed: the character starting at 12 is bad.
        let mut bad = good.to_vec();
        bad[13] = b'x';
        for step in 1..=7 {
            assert_eq!(read_in_steps(&bad, step).1, Some(12), "step {step}");
        }
        // A character cut off by the end of the file, and one cut off by an ASCII byte.
        let (res, at) = read_in_steps(&good[..good.len() - 5], 3);
        assert!(res.is_err());
        assert!(at.is_some());
        let (res, at) = read_in_steps(b"ab\xe5\xb1x", 2);
        assert!(res.is_err());
        assert_eq!(at, Some(2));
    }
}
