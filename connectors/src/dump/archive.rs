//! A pg_dump file opened for reading: its format (plain SQL, optionally gzip-compressed; the
//! custom archive; the directory format; the tar format), the catalog its DDL describes, and the data blocks
//! (COPY text or INSERT statements) of each table, readable independently and in parallel.
//!
//! Opening a plain dump reads it once from end to end: statements go to the DDL reader, COPY
//! data is skipped but checked (every row has its fields, every block its `\.`), so a
//! truncated or mangled dump fails before anything is written. A custom archive's table of
//! contents says everything without reading the data.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use etl_mappings::{QualifiedName, SourceTable};

use super::copytext::CopyLine;
use super::ddl::{Ddl, Outcome};
use super::definition::Definitions;
use super::insert::{find_values, tuples};
use super::sql::{Scanner, Statement, trim_newline};
use crate::error::ConnectorError;
use crate::postgres::TableDefinition;

mod plain;

/// Where in a dump something is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// A 1-based line of a plain dump.
    Line(u64),
    /// A byte offset.
    Byte(u64),
    /// A row of a table's data in an archive.
    Row {
        /// The table.
        table: String,
        /// 1-based row in its data.
        row: u64,
    },
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Line(l) => write!(f, "line {l}"),
            At::Byte(b) => write!(f, "byte offset {b}"),
            At::Row { table, row } => write!(f, "row {row} of the data of {table}"),
        }
    }
}

/// The dump's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    /// Plain SQL (`-Fp`).
    Plain {
        /// gzip-compressed (`.sql.gz`).
        gzip: bool,
    },
    /// The custom archive (`-Fc`).
    Custom,
    /// The directory format (`-Fd`).
    Directory,
    /// The tar format (`-Ft`): the directory format's files as members of one tar.
    Tar,
}

/// How an archive's data blocks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// zlib (custom format) or gzip (directory files).
    Gzip,
    /// LZ4 frames.
    Lz4,
    /// zstd frames.
    Zstd,
}

/// Where a block's data is.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// COPY lines of a plain dump from `offset` (line `line`, 0 when not counted) up to `\.` or
    /// `end`; `first` is where the whole block starts (byte offset, line), from which a part's
    /// lines are counted when one is needed.
    PlainCopy {
        offset: u64,
        line: u64,
        end: u64,
        first: (u64, u64),
    },
    /// INSERT statements of a plain dump in `[offset, end)`.
    PlainInserts { offset: u64, line: u64, end: u64 },
    /// No data.
    Empty,
    /// A custom archive's data block; `offset` when the TOC knows it.
    Custom {
        dump_id: i64,
        offset: Option<u64>,
        inserts: bool,
    },
    /// A directory-format data file.
    File { path: PathBuf, inserts: bool },
    /// A member of a tar dump: `len` bytes at `offset` of the tar, stored as is.
    Member {
        name: String,
        offset: u64,
        len: u64,
        inserts: bool,
    },
}

/// One table's data (one leaf of a partitioned table), or a part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    /// The table (a leaf partition for partitioned tables).
    pub table: QualifiedName,
    /// Its columns in the data's order.
    pub columns: Vec<String>,
    /// Rows, when known.
    pub rows: Option<u64>,
    /// Bytes of data, when known.
    pub bytes: u64,
    source: Source,
}

impl Block {
    /// A block of no rows for `table`.
    pub fn empty(table: QualifiedName) -> Block {
        Block {
            table,
            columns: Vec::new(),
            rows: Some(0),
            bytes: 0,
            source: Source::Empty,
        }
    }
}

/// Statements the tool skipped, by kind.
pub type Skipped = BTreeMap<String, u64>;

/// An opened dump.
#[derive(Debug)]
pub struct DumpArchive {
    path: PathBuf,
    format: DumpFormat,
    compression: Compression,
    ddl: Ddl,
    blocks: Vec<Block>,
    skipped: Skipped,
    /// Every DDL statement in dump order, for [`DumpArchive::table_definition`].
    statements: Vec<String>,
    /// The definitions those statements make, read on first use.
    definitions: std::sync::OnceLock<Definitions>,
    /// Where the custom archive's data section starts (for archives without offsets).
    data_start: u64,
    int_size: usize,
}

fn io_err(path: &Path, e: impl fmt::Display) -> ConnectorError {
    ConnectorError::Dump {
        file: path.display().to_string(),
        at: None,
        reason: e.to_string(),
    }
}

fn bad(path: &Path, at: At, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::Dump {
        file: path.display().to_string(),
        at: Some(at.to_string()),
        reason: reason.into(),
    }
}

impl DumpArchive {
    /// Opens a dump: a file (plain, gzip'd plain, custom or tar) or a directory (`-Fd`).
    pub fn open(path: &Path) -> Result<DumpArchive, ConnectorError> {
        if path.is_dir() {
            return super::custom::open_directory(path);
        }
        let mut f = File::open(path).map_err(|e| io_err(path, e))?;
        let mut head = [0u8; 512];
        let n = read_full(&mut f, &mut head).map_err(|e| io_err(path, e))?;
        let magic = &head[..n.min(5)];
        if magic == b"PGDMP" {
            return super::custom::open_custom(path);
        }
        // A tar header: `ustar` at byte 257 (pg_dump -Ft writes POSIX headers).
        if n == 512 && &head[257..262] == b"ustar" {
            return super::custom::open_tar(path);
        }
        if magic.starts_with(b"PK") || magic.starts_with(b"\x28\xb5\x2f\xfd") {
            return Err(io_err(
                path,
                "not a pg_dump file this tool reads (plain SQL, gzip'd plain SQL, custom, directory or tar format)",
            ));
        }
        let gzip = magic.starts_with(&[0x1f, 0x8b]);
        let mut archive = DumpArchive {
            path: path.to_path_buf(),
            format: DumpFormat::Plain { gzip },
            compression: if gzip {
                Compression::Gzip
            } else {
                Compression::None
            },
            ddl: Ddl::default(),
            blocks: Vec::new(),
            skipped: Skipped::new(),
            statements: Vec::new(),
            definitions: std::sync::OnceLock::new(),
            data_start: 0,
            int_size: 4,
        };
        archive.scan_plain()?;
        Ok(archive)
    }

    pub(super) fn new_archive(
        path: &Path,
        format: DumpFormat,
        compression: Compression,
        data_start: u64,
        int_size: usize,
    ) -> DumpArchive {
        DumpArchive {
            path: path.to_path_buf(),
            format,
            compression,
            ddl: Ddl::default(),
            blocks: Vec::new(),
            skipped: Skipped::new(),
            statements: Vec::new(),
            definitions: std::sync::OnceLock::new(),
            data_start,
            int_size,
        }
    }

    /// The dump's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its format.
    pub fn format(&self) -> DumpFormat {
        self.format
    }

    /// Statements skipped, by kind, with counts.
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// The tables the dump creates, partitions folded into their parents.
    pub fn catalog(&self) -> Vec<SourceTable> {
        let mut sizes: HashMap<QualifiedName, (Option<u64>, u64)> = HashMap::new();
        for b in &self.blocks {
            let e = sizes.entry(b.table.clone()).or_insert((Some(0), 0));
            e.0 = e.0.zip(b.rows).map(|(a, r)| a + r);
            e.1 += b.bytes;
        }
        self.ddl.catalog(&sizes)
    }

    /// The data blocks of `table` (all its leaves for a partitioned table).
    pub fn blocks(&self, table: &QualifiedName) -> Vec<Block> {
        let leaves = self.ddl.tree(table);
        self.blocks
            .iter()
            .filter(|b| leaves.contains(&b.table))
            .cloned()
            .collect()
    }

    /// What `table` is made of, as the dump's DDL declares it (columns with defaults and
    /// identity, constraints, indexes, partitions, sequences with their values, types,
    /// comments): what a Postgres target restores.
    pub fn table_definition(
        &self,
        table: &QualifiedName,
    ) -> Result<TableDefinition, ConnectorError> {
        self.definitions
            .get_or_init(|| Definitions::read(self.statements.iter().map(String::as_str)))
            .table_definition(table)
            .ok_or_else(|| ConnectorError::TableNotFound {
                table: table.to_string(),
            })
    }

    pub(super) fn keep_statement(&mut self, text: String) {
        self.statements.push(text);
    }

    pub(super) fn ddl_mut(&mut self) -> &mut Ddl {
        &mut self.ddl
    }

    /// Reports the generated columns, which a dump has no values for (they are left out).
    pub(super) fn note_generated(&mut self) {
        for (table, c) in self.ddl.generated_columns() {
            self.count_skipped(format!(
                "generated column {table}.{c} (a dump holds no values for it; left out)"
            ));
        }
    }

    pub(super) fn count_skipped(&mut self, kind: String) {
        *self.skipped.entry(kind).or_default() += 1;
    }

    pub(super) fn push_custom_block(
        &mut self,
        table: QualifiedName,
        columns: Vec<String>,
        dump_id: i64,
        offset: Option<u64>,
        inserts: bool,
    ) {
        self.blocks.push(Block {
            table,
            columns,
            rows: None,
            bytes: 0,
            source: Source::Custom {
                dump_id,
                offset,
                inserts,
            },
        });
    }

    pub(super) fn push_member_block(
        &mut self,
        table: QualifiedName,
        columns: Vec<String>,
        (name, offset, len): (String, u64, u64),
        inserts: bool,
    ) {
        self.blocks.push(Block {
            table,
            columns,
            rows: None,
            bytes: len,
            source: Source::Member {
                name,
                offset,
                len,
                inserts,
            },
        });
    }

    pub(super) fn push_file_block(
        &mut self,
        table: QualifiedName,
        columns: Vec<String>,
        path: PathBuf,
        inserts: bool,
    ) {
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        self.blocks.push(Block {
            table,
            columns,
            rows: None,
            bytes,
            source: Source::File { path, inserts },
        });
    }

    /// `at` as a user looks for it: a byte offset inside a plain dump's COPY block becomes its
    /// line, counted from the block's start (a split part's lines are not counted while
    /// reading, only here, for the rows that need naming); a row of an archive is named with
    /// its entry (the tar member or data file, or the custom block's byte offset).
    pub fn locate(&self, block: &Block, at: &At) -> String {
        let at = match (&block.source, at) {
            (Source::PlainCopy { first, .. }, At::Byte(o)) => {
                self.line_at(*first, *o).unwrap_or_else(|| at.clone())
            }
            _ => at.clone(),
        };
        match entry_name(&block.source) {
            Some(entry) => format!("{at}, {entry}"),
            None => at.to_string(),
        }
    }

    /// Reads a block, calling `row` with each row's fields (in `block.columns` order) and
    /// where it is.
    pub fn read_block(
        &self,
        block: &Block,
        row: &mut dyn FnMut(&CopyLine, &At) -> Result<bool, ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let table = block.table.to_string();
        let ncols = block.columns.len();
        match &block.source {
            Source::Empty => Ok(()),
            Source::PlainCopy {
                offset, line, end, ..
            } => {
                let reader = self.plain_at(*offset)?;
                let reader = BufReader::new(reader.take(end - offset));
                let mut sc = Scanner::new(reader, *offset, line.saturating_sub(1));
                let at = |sc_line: u64, off: u64| {
                    if *line > 0 {
                        At::Line(sc_line)
                    } else {
                        At::Byte(off)
                    }
                };
                copy_lines(&self.path, &mut sc, ncols, &|l, o| at(l, o), row, true)
            }
            Source::PlainInserts { offset, line, end } => {
                let reader = self.plain_at(*offset)?;
                let reader = BufReader::new(reader.take(end - offset));
                let mut sc = Scanner::new(reader, *offset, line.saturating_sub(1));
                insert_statements(&self.path, &mut sc, ncols, row, At::Line)
            }
            Source::Custom {
                dump_id,
                offset,
                inserts,
            } => {
                let data = super::custom::open_block(self, *dump_id, *offset)?;
                let reader = self.decompress(data);
                let entry = entry_name(&block.source);
                self.read_stream(reader, ncols, *inserts, &table, row)
                    .map_err(|e| in_entry(e, entry.as_deref()))
            }
            Source::File { path, inserts } => {
                let f = File::open(path).map_err(|e| io_err(path, e))?;
                let reader: Box<dyn Read + Send> = match self.compression {
                    Compression::Gzip => {
                        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(f)))
                    }
                    _ => self.decompress(Box::new(BufReader::new(f))),
                };
                let entry = entry_name(&block.source);
                self.read_stream(reader, ncols, *inserts, &table, row)
                    .map_err(|e| in_entry(e, entry.as_deref()))
            }
            Source::Member {
                offset,
                len,
                inserts,
                ..
            } => {
                let mut f = File::open(&self.path).map_err(|e| io_err(&self.path, e))?;
                f.seek(SeekFrom::Start(*offset))
                    .map_err(|e| io_err(&self.path, e))?;
                let reader: Box<dyn Read + Send> = Box::new(f.take(*len));
                let entry = entry_name(&block.source);
                self.read_stream(reader, ncols, *inserts, &table, row)
                    .map_err(|e| in_entry(e, entry.as_deref()))
            }
        }
    }

    fn read_stream(
        &self,
        reader: Box<dyn Read + Send>,
        ncols: usize,
        inserts: bool,
        table: &str,
        row: &mut dyn FnMut(&CopyLine, &At) -> Result<bool, ConnectorError>,
    ) -> Result<(), ConnectorError> {
        let mut sc = Scanner::new(BufReader::with_capacity(1 << 20, reader), 0, 0);
        let row_at = |n: u64| At::Row {
            table: table.to_string(),
            row: n,
        };
        if inserts {
            insert_statements(&self.path, &mut sc, ncols, row, row_at)
        } else {
            copy_lines(&self.path, &mut sc, ncols, &|l, _| row_at(l), row, false)
        }
    }

    pub(super) fn decompress(&self, r: Box<dyn Read + Send>) -> Box<dyn Read + Send> {
        match self.compression {
            Compression::None => r,
            Compression::Gzip => Box::new(flate2::read::ZlibDecoder::new(r)),
            Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(r)),
            Compression::Zstd => match zstd::stream::read::Decoder::new(r) {
                Ok(d) => Box::new(d),
                Err(e) => Box::new(FailingReader(Some(e))),
            },
        }
    }

    pub(super) fn int_size(&self) -> usize {
        self.int_size
    }

    pub(super) fn data_start(&self) -> u64 {
        self.data_start
    }
}

/// A reader that reports an error it got while being made.
struct FailingReader(Option<std::io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        Err(self
            .0
            .take()
            .unwrap_or_else(|| std::io::Error::other("unreadable data")))
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn values_count(st: &Statement) -> u64 {
    // `--rows-per-insert` puts several tuples in one statement; a cheap count for estimates.
    (st.text.matches("),").count() + 1) as u64
}

/// The archive entry a block's data is in, as errors and rejects name it: a tar member, a
/// directory's data file, or a custom archive's data block (plain dumps name lines instead).
fn entry_name(source: &Source) -> Option<String> {
    match source {
        Source::Member { name, offset, .. } => Some(format!(
            "member {name} (at byte offset {offset} of the tar)"
        )),
        Source::File { path, .. } => Some(format!(
            "data file {}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )),
        Source::Custom {
            offset: Some(o), ..
        } => Some(format!("its data block at byte offset {o}")),
        _ => None,
    }
}

/// An error in an entry's data with the entry added to where it happened (once: a row the
/// reader located already names it).
fn in_entry(e: ConnectorError, entry: Option<&str>) -> ConnectorError {
    match (e, entry) {
        (ConnectorError::Dump { file, at, reason }, Some(entry))
            if !at.as_deref().is_some_and(|a| a.contains(entry)) =>
        {
            ConnectorError::Dump {
                file,
                at: Some(match at {
                    Some(a) => format!("{a}, {entry}"),
                    None => entry.to_string(),
                }),
                reason,
            }
        }
        (e, _) => e,
    }
}

/// COPY text lines up to `\.`: with `need_end`, the data must end with it.
fn copy_lines<R: BufRead>(
    path: &Path,
    sc: &mut Scanner<R>,
    ncols: usize,
    at: &dyn Fn(u64, u64) -> At,
    row: &mut dyn FnMut(&CopyLine, &At) -> Result<bool, ConnectorError>,
    in_range: bool,
) -> Result<(), ConnectorError> {
    let mut line = CopyLine::default();
    let mut n = 0u64;
    loop {
        let off = sc.offset();
        let next = sc
            .raw_line()
            .map_err(|e| bad(path, at(e.line, e.offset), e.reason))?;
        let Some((data, line_no)) = next else {
            if in_range {
                return Ok(());
            }
            return Err(bad(
                path,
                at(n + 1, off),
                "the table's data ends without its `\\.` end marker (truncated or corrupted)",
            ));
        };
        if data == b"\\." {
            return Ok(());
        }
        n += 1;
        let here = if in_range {
            at(line_no, off)
        } else {
            at(n, off)
        };
        let fields = line.parse(trim_newline(data));
        if fields != ncols.max(1) {
            return Err(bad(
                path,
                here,
                format!("a COPY row with {fields} fields where {ncols} are expected"),
            ));
        }
        if !row(&line, &here)? {
            return Ok(());
        }
    }
}

/// INSERT statements: each tuple of each statement is a row.
fn insert_statements<R: BufRead>(
    path: &Path,
    sc: &mut Scanner<R>,
    ncols: usize,
    row: &mut dyn FnMut(&CopyLine, &At) -> Result<bool, ConnectorError>,
    at: impl Fn(u64) -> At,
) -> Result<(), ConnectorError> {
    let mut line = CopyLine::default();
    let mut n = 0u64;
    loop {
        let st = sc
            .next_statement()
            .map_err(|e| bad(path, at(e.line), e.reason))?;
        let Some(st) = st else { return Ok(()) };
        if !st
            .text
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("insert"))
        {
            continue;
        }
        let values = find_values(&st.text)
            .ok_or_else(|| bad(path, at(st.line), "an INSERT without VALUES"))?;
        for tuple in tuples(values).map_err(|r| bad(path, at(st.line), r))? {
            n += 1;
            line.clear();
            for v in &tuple {
                line.push(v.as_deref());
            }
            if tuple.len() != ncols {
                return Err(bad(
                    path,
                    at(st.line),
                    format!(
                        "an INSERT row with {} values where {ncols} are expected",
                        tuple.len()
                    ),
                ));
            }
            let here = match at(st.line) {
                At::Row { table, .. } => At::Row { table, row: n },
                other => other,
            };
            if !row(&line, &here)? {
                return Ok(());
            }
        }
    }
}
