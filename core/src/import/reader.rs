//! A reader that counts the bytes read through it, for progress reports.

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;

/// A shared byte count.
#[derive(Clone, Default)]
pub(crate) struct Counter(Rc<Cell<u64>>);

impl Counter {
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// Wraps a reader and adds every byte read to a [`Counter`].
pub(crate) struct CountingReader<R> {
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
        self.counter.0.set(self.counter.0.get() + n as u64);
        Ok(n)
    }
}
