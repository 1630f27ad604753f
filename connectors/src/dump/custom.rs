//! pg_dump's custom (`-Fc`) and directory (`-Fd`) archives, read without pg_restore: the
//! header, the table of contents (whose entries carry the DDL and the COPY statements), and
//! the data blocks, each one compressed stream (zlib, LZ4 frame, zstd frame or none) cut into
//! length-prefixed chunks. Formats 1.12 to 1.16 (PostgreSQL 11 to 17).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use etl_mappings::QualifiedName;

use super::archive::{At, Compression, DumpArchive, DumpFormat};
use super::ddl::Outcome;
use super::sql::Scanner;
use crate::error::ConnectorError;

const K_VERS_1_12: u32 = 0x010C00;
const K_VERS_1_14: u32 = 0x010E00;
const K_VERS_1_15: u32 = 0x010F00;
const K_VERS_1_16: u32 = 0x011000;
/// `BLK_DATA`: a table's data.
const BLK_DATA: u8 = 1;
/// `BLK_BLOBS`: large objects.
const BLK_BLOBS: u8 = 3;

/// A byte reader that knows its position, for located errors.
struct Bytes<R> {
    r: R,
    pos: u64,
    int_size: usize,
}

type Res<T> = Result<T, (u64, String)>;

impl<R: Read> Bytes<R> {
    fn byte(&mut self) -> Res<u8> {
        let mut b = [0u8; 1];
        self.r
            .read_exact(&mut b)
            .map_err(|_| (self.pos, "the archive ends early (truncated?)".to_string()))?;
        self.pos += 1;
        Ok(b[0])
    }

    fn maybe_byte(&mut self) -> Res<Option<u8>> {
        let mut b = [0u8; 1];
        match self.r.read(&mut b) {
            Ok(0) => Ok(None),
            Ok(_) => {
                self.pos += 1;
                Ok(Some(b[0]))
            }
            Err(e) => Err((self.pos, e.to_string())),
        }
    }

    fn int(&mut self) -> Res<i64> {
        let at = self.pos;
        let sign = self.byte()?;
        let mut v: i64 = 0;
        for i in 0..self.int_size {
            let b = i64::from(self.byte()?);
            if i < 8 {
                v |= b << (8 * i);
            } else if b != 0 {
                return Err((at, "an integer too large".into()));
            }
        }
        match sign {
            0 => Ok(v),
            1 => Ok(-v),
            _ => Err((at, format!("a bad integer sign byte {sign}"))),
        }
    }

    fn string(&mut self) -> Res<Option<String>> {
        let at = self.pos;
        let len = self.int()?;
        if len < 0 {
            return Ok(None);
        }
        if len > 1 << 30 {
            return Err((at, format!("a string of {len} bytes (corrupted?)")));
        }
        let mut buf = vec![0u8; len as usize];
        self.r.read_exact(&mut buf).map_err(|_| {
            (
                at,
                "the archive ends inside a string (truncated?)".to_string(),
            )
        })?;
        self.pos += len as u64;
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }

    fn skip(&mut self, n: u64) -> Res<()> {
        let copied = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
            .map_err(|e| (self.pos, e.to_string()))?;
        if copied != n {
            return Err((
                self.pos,
                "the archive ends inside a data block (truncated?)".into(),
            ));
        }
        self.pos += n;
        Ok(())
    }
}

/// One TOC entry, the fields the reader needs.
struct TocEntry {
    dump_id: i64,
    desc: String,
    tag: String,
    namespace: Option<String>,
    defn: Option<String>,
    copy_stmt: Option<String>,
    deps: Vec<i64>,
    /// Custom: the data offset when set. Directory: the data file name.
    offset: Option<u64>,
    file: Option<String>,
    had_dumper: bool,
}

struct Header {
    version: u32,
    int_size: usize,
    off_size: usize,
    format: u8,
    compression: Compression,
}

fn located(path: &Path, (at, reason): (u64, String)) -> ConnectorError {
    ConnectorError::Dump {
        file: path.display().to_string(),
        at: Some(At::Byte(at).to_string()),
        reason,
    }
}

fn header<R: Read>(b: &mut Bytes<R>) -> Res<Header> {
    let mut magic = [0u8; 5];
    for m in &mut magic {
        *m = b.byte()?;
    }
    if &magic != b"PGDMP" {
        return Err((0, "not a pg_dump archive (no PGDMP magic)".into()));
    }
    let (maj, min, rev) = (b.byte()?, b.byte()?, b.byte()?);
    let version = u32::from(maj) << 16 | u32::from(min) << 8 | u32::from(rev);
    if !(K_VERS_1_12..K_VERS_1_16 + 0x100).contains(&version) {
        return Err((
            5,
            format!(
                "archive version {maj}.{min}.{rev} is not supported (1.12 to 1.16: pg_dump 11 to 17)"
            ),
        ));
    }
    let int_size = b.byte()? as usize;
    let off_size = b.byte()? as usize;
    if !(1..=16).contains(&int_size) || !(1..=16).contains(&off_size) {
        return Err((
            8,
            format!("implausible integer sizes {int_size}/{off_size}"),
        ));
    }
    b.int_size = int_size;
    let format = b.byte()?;
    let compression = if version >= K_VERS_1_15 {
        match b.byte()? {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Lz4,
            3 => Compression::Zstd,
            other => return Err((11, format!("unknown compression algorithm {other}"))),
        }
    } else if b.int()? != 0 {
        Compression::Gzip
    } else {
        Compression::None
    };
    for _ in 0..7 {
        b.int()?;
    }
    for _ in 0..3 {
        b.string()?;
    }
    Ok(Header {
        version,
        int_size,
        off_size,
        format,
        compression,
    })
}

fn toc<R: Read>(b: &mut Bytes<R>, h: &Header, directory: bool) -> Res<Vec<TocEntry>> {
    let at = b.pos;
    let count = b.int()?;
    if !(0..10_000_000).contains(&count) {
        return Err((
            at,
            format!("a table of contents of {count} entries (corrupted?)"),
        ));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let entry_at = b.pos;
        let dump_id = b.int()?;
        if dump_id <= 0 {
            return Err((
                entry_at,
                format!("a TOC entry with dump id {dump_id} (corrupted?)"),
            ));
        }
        let had_dumper = b.int()? != 0;
        b.string()?; // tableoid
        b.string()?; // oid
        let tag = b.string()?.unwrap_or_default();
        let desc = b.string()?.unwrap_or_default();
        b.int()?; // section
        let defn = b.string()?;
        b.string()?; // dropStmt
        let copy_stmt = b.string()?;
        let namespace = b.string()?;
        b.string()?; // tablespace
        if h.version >= K_VERS_1_14 {
            b.string()?; // tableam
        }
        if h.version >= K_VERS_1_16 {
            b.int()?; // relkind
        }
        b.string()?; // owner
        b.string()?; // withOids
        let mut deps = Vec::new();
        while let Some(d) = b.string()? {
            deps.push(
                d.trim()
                    .parse()
                    .map_err(|_| (b.pos, format!("a bad dependency `{d}`")))?,
            );
        }
        let (offset, file) = if directory {
            (None, b.string()?.filter(|f| !f.is_empty()))
        } else {
            let flag = b.byte()?;
            let mut off: u64 = 0;
            for i in 0..h.off_size {
                let v = u64::from(b.byte()?);
                if i < 8 {
                    off |= v << (8 * i);
                }
            }
            match flag {
                1 | 3 => (None, None),
                2 => (Some(off), None),
                other => return Err((b.pos, format!("an unexpected data offset flag {other}"))),
            }
        };
        out.push(TocEntry {
            dump_id,
            desc,
            tag,
            namespace,
            defn,
            copy_stmt,
            deps,
            offset,
            file,
            had_dumper,
        });
    }
    Ok(out)
}

/// Where an archive's data blocks are.
#[derive(Clone, Copy)]
enum DataIn<'a> {
    /// In the custom archive itself.
    Archive,
    /// Files beside `toc.dat`.
    Directory(&'a Path),
    /// Members of a tar, by name: (byte offset, length).
    Tar(&'a std::collections::HashMap<String, (u64, u64)>),
}

/// Runs every entry's DDL through the catalog reader and registers the data entries.
fn load_entries(
    archive: &mut DumpArchive,
    entries: &[TocEntry],
    data: DataIn<'_>,
) -> Result<(), ConnectorError> {
    let path = archive.path().to_path_buf();
    for e in entries {
        if e.desc == "TABLE DATA" {
            continue;
        }
        // Every definition is kept for a target that restores them (sequences, defaults,
        // comments, foreign keys, ...); the catalog reads only the ones that shape tables.
        if let Some(defn) = e.defn.as_deref() {
            let mut sc = Scanner::new(defn.as_bytes(), 0, 0);
            while let Ok(Some(st)) = sc.next_statement() {
                archive.keep_statement(st.text);
            }
        }
        match e.desc.as_str() {
            "TABLE" | "TABLE ATTACH" | "CONSTRAINT" | "INDEX" | "TYPE" | "DOMAIN"
            | "INDEX ATTACH" => {}
            other => {
                archive.count_skipped(other.to_string());
                continue;
            }
        }
        let Some(defn) = e.defn.as_deref() else {
            continue;
        };
        let mut sc = Scanner::new(defn.as_bytes(), 0, 0);
        while let Some(st) = sc.next_statement().map_err(|x| ConnectorError::Dump {
            file: path.display().to_string(),
            at: Some(format!("the definition of {} {}", e.desc, e.tag)),
            reason: x.reason,
        })? {
            let outcome =
                archive
                    .ddl_mut()
                    .statement(&st.text)
                    .map_err(|r| ConnectorError::Dump {
                        file: path.display().to_string(),
                        at: Some(format!("the definition of {} {}", e.desc, e.tag)),
                        reason: r,
                    })?;
            if let Outcome::Skipped(kind) = outcome {
                archive.count_skipped(kind);
            }
        }
    }
    for e in entries
        .iter()
        .filter(|e| e.desc == "TABLE DATA" && e.had_dumper)
    {
        let table = QualifiedName::new(
            e.namespace.clone().unwrap_or_else(|| "public".into()),
            e.tag.clone(),
        );
        let (table, columns, inserts) =
            match e.copy_stmt.as_deref() {
                Some(copy) => match archive
                    .ddl_mut()
                    .statement(copy.trim().trim_end_matches(';'))
                {
                    Ok(Outcome::Copy { table, columns }) => (table, columns, false),
                    _ => {
                        return Err(ConnectorError::Dump {
                            file: path.display().to_string(),
                            at: Some(format!("the data entry of {table}")),
                            reason: format!("an unreadable COPY statement `{copy}`"),
                        });
                    }
                },
                None => {
                    let cols = archive.ddl_mut().column_names(&table).ok_or_else(|| {
                        ConnectorError::Dump {
                            file: path.display().to_string(),
                            at: None,
                            reason: format!("data for {table}, which the archive never creates"),
                        }
                    })?;
                    (table, cols, true)
                }
            };
        let _ = &e.deps;
        match data {
            DataIn::Directory(d) => {
                let Some(name) = &e.file else { continue };
                let file = find_data_file(d, name).ok_or_else(|| ConnectorError::Dump {
                    file: d.join(name).display().to_string(),
                    at: None,
                    reason: format!("the data file of {table} is missing"),
                })?;
                archive.push_file_block(table, columns, file, inserts);
            }
            DataIn::Tar(members) => {
                let Some(name) = &e.file else { continue };
                let &(offset, len) = members.get(name).ok_or_else(|| ConnectorError::Dump {
                    file: path.display().to_string(),
                    at: None,
                    reason: format!("the tar has no member {name}, the data of {table}"),
                })?;
                archive.push_member_block(table, columns, (name.clone(), offset, len), inserts);
            }
            DataIn::Archive => {
                archive.push_custom_block(table, columns, e.dump_id, e.offset, inserts)
            }
        }
    }
    Ok(())
}

fn find_data_file(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    ["", ".gz", ".lz4", ".zst"]
        .iter()
        .map(|sfx| dir.join(format!("{name}{sfx}")))
        .find(|p| p.is_file())
}

/// Opens a custom-format archive.
pub fn open_custom(path: &Path) -> Result<DumpArchive, ConnectorError> {
    let f = File::open(path).map_err(|e| located(path, (0, e.to_string())))?;
    let mut b = Bytes {
        r: BufReader::new(f),
        pos: 0,
        int_size: 4,
    };
    let h = header(&mut b).map_err(|e| located(path, e))?;
    if h.format != 1 {
        return Err(located(
            path,
            (
                10,
                format!("archive format {} is not the custom format", h.format),
            ),
        ));
    }
    let entries = toc(&mut b, &h, false).map_err(|e| located(path, e))?;
    let mut archive =
        DumpArchive::new_archive(path, DumpFormat::Custom, h.compression, b.pos, h.int_size);
    load_entries(&mut archive, &entries, DataIn::Archive)?;
    archive.note_generated();
    Ok(archive)
}

/// Opens a directory-format dump (`toc.dat` and one file per table).
pub fn open_directory(dir: &Path) -> Result<DumpArchive, ConnectorError> {
    let toc_path = dir.join("toc.dat");
    let f = File::open(&toc_path).map_err(|e| ConnectorError::Dump {
        file: toc_path.display().to_string(),
        at: None,
        reason: format!("{e} (a directory dump has a toc.dat)"),
    })?;
    let mut b = Bytes {
        r: BufReader::new(f),
        pos: 0,
        int_size: 4,
    };
    let h = header(&mut b).map_err(|e| located(&toc_path, e))?;
    let entries = toc(&mut b, &h, true).map_err(|e| located(&toc_path, e))?;
    let mut archive =
        DumpArchive::new_archive(dir, DumpFormat::Directory, h.compression, 0, h.int_size);
    load_entries(&mut archive, &entries, DataIn::Directory(dir))?;
    archive.note_generated();
    Ok(archive)
}

/// Opens a tar-format dump (`-Ft`): the members are listed once (name, offset, length; pg_dump
/// stores them uncompressed), `toc.dat` is read in place as a directory dump's, and each
/// table's data member is read by seeking to it, so tables load in parallel as from `-Fd`.
pub fn open_tar(path: &Path) -> Result<DumpArchive, ConnectorError> {
    let f = File::open(path).map_err(|e| located(path, (0, e.to_string())))?;
    let mut tar = tar::Archive::new(BufReader::new(f));
    let mut members = std::collections::HashMap::new();
    let entries = tar
        .entries()
        .map_err(|e| located(path, (0, format!("not a readable tar: {e}"))))?;
    for entry in entries {
        let entry = entry.map_err(|e| located(path, (0, format!("a bad tar member: {e}"))))?;
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        members.insert(name, (entry.raw_file_position(), entry.size()));
    }
    let Some(&(toc_at, toc_len)) = members.get("toc.dat") else {
        return Err(located(
            path,
            (
                0,
                "a tar without toc.dat is not a pg_dump -Ft archive".into(),
            ),
        ));
    };
    let mut f = File::open(path).map_err(|e| located(path, (0, e.to_string())))?;
    f.seek(SeekFrom::Start(toc_at))
        .map_err(|e| located(path, (toc_at, e.to_string())))?;
    let mut b = Bytes {
        r: BufReader::new(f.take(toc_len)),
        pos: toc_at,
        int_size: 4,
    };
    let h = header(&mut b).map_err(|e| located(path, e))?;
    let entries = toc(&mut b, &h, true).map_err(|e| located(path, e))?;
    let mut archive =
        DumpArchive::new_archive(path, DumpFormat::Tar, Compression::None, 0, h.int_size);
    load_entries(&mut archive, &entries, DataIn::Tar(&members))?;
    archive.note_generated();
    Ok(archive)
}

/// The chunks of one data block as one byte stream.
struct Chunks {
    b: Bytes<BufReader<File>>,
    left: u64,
    done: bool,
    path: std::path::PathBuf,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.left == 0 {
            if self.done {
                return Ok(0);
            }
            let len = self.b.int().map_err(|(at, r)| {
                std::io::Error::other(format!("{} at byte offset {at}: {r}", self.path.display()))
            })?;
            if len == 0 {
                self.done = true;
                return Ok(0);
            }
            if len < 0 {
                return Err(std::io::Error::other(format!(
                    "{} at byte offset {}: a negative chunk length (corrupted?)",
                    self.path.display(),
                    self.b.pos
                )));
            }
            self.left = len as u64;
        }
        let want = buf.len().min(self.left as usize);
        let n = self.b.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "{} at byte offset {}: the archive ends inside a data block (truncated?)",
                self.path.display(),
                self.b.pos
            )));
        }
        self.b.pos += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Positions a reader at the chunks of block `dump_id` (seeking when the TOC knows where it is,
/// otherwise walking the blocks from the start of the data).
pub fn open_block(
    archive: &DumpArchive,
    dump_id: i64,
    offset: Option<u64>,
) -> Result<Box<dyn Read + Send>, ConnectorError> {
    let path = archive.path();
    let mut f = File::open(path).map_err(|e| located(path, (0, e.to_string())))?;
    let start = offset.unwrap_or(archive.data_start());
    f.seek(SeekFrom::Start(start))
        .map_err(|e| located(path, (start, e.to_string())))?;
    let mut b = Bytes {
        r: BufReader::with_capacity(1 << 20, f),
        pos: start,
        int_size: archive.int_size(),
    };
    loop {
        let at = b.pos;
        let kind = b
            .maybe_byte()
            .map_err(|e| located(path, e))?
            .ok_or_else(|| {
                located(
                    path,
                    (
                        at,
                        format!("the data block {dump_id} is missing (truncated?)"),
                    ),
                )
            })?;
        let id = b.int().map_err(|e| located(path, e))?;
        if kind != BLK_DATA && kind != BLK_BLOBS {
            return Err(located(
                path,
                (at, format!("an unknown block type {kind} (corrupted?)")),
            ));
        }
        if id == dump_id && kind == BLK_DATA {
            return Ok(Box::new(Chunks {
                b,
                left: 0,
                done: false,
                path: path.to_path_buf(),
            }));
        }
        if offset.is_some() {
            return Err(located(
                path,
                (
                    at,
                    format!("found block {id} where block {dump_id} should be (corrupted?)"),
                ),
            ));
        }
        // Skip this block: chunks (for large objects: per object, ended by a zero oid).
        let skip_chunks = |b: &mut Bytes<BufReader<File>>| -> Res<()> {
            loop {
                let len = b.int()?;
                if len == 0 {
                    return Ok(());
                }
                if len < 0 {
                    return Err((b.pos, "a negative chunk length (corrupted?)".into()));
                }
                b.skip(len as u64)?;
            }
        };
        if kind == BLK_BLOBS {
            while b.int().map_err(|e| located(path, e))? != 0 {
                skip_chunks(&mut b).map_err(|e| located(path, e))?;
            }
        } else {
            skip_chunks(&mut b).map_err(|e| located(path, e))?;
        }
    }
}
