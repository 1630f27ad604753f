//! Segment files written around the page cache (`O_DIRECT`).
//!
//! A bulk load writes each byte of its segments once and the run does not read them back
//! (FLAT) or reads them once (an index build). Through the page cache, every byte is first
//! copied by the kernel into freshly allocated cache pages: `perf` of a 1.5 GB `etl run` had
//! that copy (`copy_folio_from_iter_atomic`) at 36 % of the writer thread's samples, and `dd`
//! on these machines writes 1.6 GB in 2.2 s of system time buffered against 1.5 s, almost none
//! of it CPU, with `O_DIRECT`. The CPU that frees goes to the readers on a 2-core machine.
//!
//! `O_DIRECT` wants the buffer, the length and the file offset aligned to the device's block;
//! [`DirectWriter`] fills an aligned buffer of [`CHUNK`] bytes and writes it whole, pads the
//! last block with zeros and cuts the file to its real length at the end. Where the file
//! system refuses `O_DIRECT` (tmpfs, some network file systems), at the open or the first
//! write, the writer falls back to ordinary buffered writes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Alignment of buffers, lengths and offsets (the largest logical block in common use).
const ALIGN: usize = 4096;
/// Bytes written per system call.
pub const CHUNK: usize = 8 << 20;

/// A file written in aligned chunks around the page cache, or buffered where it cannot be.
pub struct DirectWriter {
    path: PathBuf,
    file: File,
    /// `CHUNK + ALIGN` bytes; the aligned window starts at `start`.
    buf: Vec<u8>,
    start: usize,
    /// Bytes in the window.
    len: usize,
    /// Bytes written to the file.
    written: u64,
    direct: bool,
}

impl DirectWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> io::Result<DirectWriter> {
        let (file, direct) = match open(path, true) {
            Ok(f) => (f, true),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (open(path, false)?, false),
            Err(e) => return Err(e),
        };
        let buf = vec![0u8; CHUNK + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN);
        Ok(DirectWriter {
            path: path.to_path_buf(),
            file,
            buf,
            start,
            len: 0,
            written: 0,
            direct,
        })
    }

    /// Whether writes bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes the window's first `n` bytes (a multiple of [`ALIGN`] unless buffered).
    fn flush_window(&mut self, n: usize) -> io::Result<()> {
        let window = &self.buf[self.start..self.start + n];
        match self.file.write_all(window) {
            Err(e)
                if self.direct && self.written == 0 && e.raw_os_error() == Some(libc::EINVAL) =>
            {
                // Open worked but the file system refuses direct writes: buffered from here on.
                self.file = open(&self.path, false)?;
                self.direct = false;
                self.file.write_all(&self.buf[self.start..self.start + n])?;
            }
            r => r?,
        }
        if !self.direct {
            // Buffered: start writeback now, so the commit's fsync finds the chunk on disk.
            start_writeback(&self.file, self.written, n as u64);
        }
        self.written += n as u64;
        Ok(())
    }

    /// Writes what is left (the last block padded, the file then cut to its length) and
    /// returns the file, not yet synced.
    pub fn finish(mut self) -> io::Result<File> {
        let len = self.len;
        if len > 0 {
            let n = if self.direct {
                let padded = len.div_ceil(ALIGN) * ALIGN;
                self.buf[self.start + len..self.start + padded].fill(0);
                padded
            } else {
                len
            };
            let before = self.written;
            self.flush_window(n)?;
            if n != len {
                self.file.set_len(before + len as u64)?;
            }
            self.written = before + len as u64;
        }
        Ok(self.file)
    }
}

/// Starts writing `len` bytes at `offset` of `file` back to disk without waiting (Linux's
/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`); elsewhere, and on any error, nothing: the commit's
/// fsync writes them anyway.
#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "sync_file_range on a file descriptor we own, with a range inside the file; it only \
              schedules writeback and touches no memory of ours"
)]
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: see the reason above.
    let _ = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) {}

fn open(path: &Path, direct: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_DIRECT);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = direct;
    o.open(path)
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.len;
        let n = room.min(data.len());
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == CHUNK {
            self.flush_window(CHUNK)?;
            self.len = 0;
        }
        Ok(n)
    }

    /// Nothing: only whole chunks can be written directly; [`DirectWriter::finish`] writes the
    /// rest.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files of every awkward length come back byte for byte, in a directory of the machine's
    /// disk (where `O_DIRECT` is taken) and in memory-backed `/dev/shm` when there is one
    /// (where it is refused and the writer falls back).
    #[test]
    fn every_length_reads_back_exactly() {
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let mut dirs = vec![disk.path().to_path_buf()];
        let shm = Path::new("/dev/shm");
        let mem = shm
            .is_dir()
            .then(|| tempfile::tempdir_in(shm).ok())
            .flatten();
        if let Some(m) = &mem {
            dirs.push(m.path().to_path_buf());
        }
        for dir in &dirs {
            for len in [
                0,
                1,
                4095,
                4096,
                4097,
                CHUNK - 1,
                CHUNK,
                CHUNK + 1,
                2 * CHUNK + 12345,
            ] {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4096) as u8).collect();
                let path = dir.join(format!("f{len}"));
                let mut w = DirectWriter::create(&path).unwrap();
                // In pieces of odd sizes, as the IPC writer hands them over.
                for piece in data.chunks(1_000_003) {
                    w.write_all(piece).unwrap();
                }
                let f = w.finish().unwrap();
                f.sync_all().unwrap();
                assert_eq!(
                    std::fs::read(&path).unwrap(),
                    data,
                    "{} {len}",
                    dir.display()
                );
            }
        }
    }
}
