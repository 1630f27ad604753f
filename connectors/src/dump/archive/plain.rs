//! Plain SQL dumps (optionally gzip'd): the one pass that reads the DDL and checks every COPY
//! block and INSERT run, the split of a big table's block into byte ranges at line boundaries
//! for parallel readers, and the line of a byte offset, counted only when a row needs naming.

use super::*;

impl DumpArchive {
    pub(super) fn plain_reader(&self) -> Result<Box<dyn BufRead + Send>, ConnectorError> {
        let f = File::open(&self.path).map_err(|e| io_err(&self.path, e))?;
        Ok(match self.format {
            DumpFormat::Plain { gzip: true } => Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(BufReader::new(f)),
            )),
            _ => Box::new(BufReader::with_capacity(1 << 20, f)),
        })
    }

    /// One pass over a plain dump: DDL, COPY blocks (checked), runs of INSERTs.
    pub(super) fn scan_plain(&mut self) -> Result<(), ConnectorError> {
        let reader = self.plain_reader()?;
        let mut sc = Scanner::new(reader, 0, 0);
        let mut inserts: Option<(QualifiedName, Vec<String>, u64, u64, u64)> = None;
        loop {
            let st = sc
                .next_statement()
                .map_err(|e| bad(&self.path, At::Line(e.line), e.reason))?;
            let Some(st) = st else { break };
            let outcome = self
                .ddl
                .statement(&st.text)
                .map_err(|r| bad(&self.path, At::Line(st.line), r))?;
            let continues_inserts = matches!(&outcome, Outcome::Insert { table, .. }
                if inserts.as_ref().is_some_and(|(t, ..)| t == table));
            if !continues_inserts {
                self.close_inserts(inserts.take(), st.offset);
            }
            if matches!(outcome, Outcome::Used | Outcome::Skipped(_)) {
                self.statements.push(st.text.clone());
            }
            match outcome {
                Outcome::Used => {}
                Outcome::Skipped(kind) => self.count_skipped(kind),
                Outcome::Copy { table, columns } => {
                    let block = sc
                        .copy_data(columns.len().max(1))
                        .map_err(|e| bad(&self.path, At::Line(e.line), e.reason))?;
                    self.blocks.push(Block {
                        table,
                        columns,
                        rows: Some(block.rows),
                        bytes: block.end - block.offset,
                        source: Source::PlainCopy {
                            offset: block.offset,
                            line: block.line,
                            end: block.end,
                            first: (block.offset, block.line),
                        },
                    });
                }
                Outcome::Insert { table, columns } => {
                    let columns = match columns {
                        Some(c) => c,
                        None => self.ddl.column_names(&table).ok_or_else(|| {
                            bad(
                                &self.path,
                                At::Line(st.line),
                                format!("INSERT into {table}, which the dump never creates"),
                            )
                        })?,
                    };
                    match &mut inserts {
                        Some((_, _, _, _, rows)) if continues_inserts => {
                            *rows += values_count(&st);
                        }
                        _ => {
                            inserts = Some((table, columns, st.offset, st.line, values_count(&st)))
                        }
                    }
                }
            }
        }
        let end = sc.offset();
        self.close_inserts(inserts, end);
        self.note_generated();
        Ok(())
    }

    pub(super) fn close_inserts(
        &mut self,
        run: Option<(QualifiedName, Vec<String>, u64, u64, u64)>,
        end: u64,
    ) {
        if let Some((table, columns, offset, line, rows)) = run {
            self.blocks.push(Block {
                table,
                columns,
                rows: Some(rows),
                bytes: end - offset,
                source: Source::PlainInserts { offset, line, end },
            });
        }
    }

    /// Splits the blocks of a plain, uncompressed dump into about `parts` byte ranges at line
    /// boundaries, so one big table is read by several readers. Other blocks stay whole.
    pub fn split(&self, blocks: Vec<Block>, parts: usize) -> Vec<Block> {
        if self.format != (DumpFormat::Plain { gzip: false }) || parts <= blocks.len() {
            return blocks;
        }
        let total: u64 = blocks.iter().map(|b| b.bytes).sum();
        let target = (total / parts as u64).max(8 << 20);
        let mut out = Vec::new();
        for b in blocks {
            match b.source {
                Source::PlainCopy {
                    offset,
                    line,
                    end,
                    first,
                } if b.bytes > target => {
                    let mut cuts = vec![offset];
                    let mut at = offset + target;
                    while at < end {
                        match self.next_line_start(at, end) {
                            Some(c) if c < end => {
                                cuts.push(c);
                                at = c + target;
                            }
                            _ => break,
                        }
                    }
                    cuts.push(end);
                    for (i, w) in cuts.windows(2).enumerate() {
                        out.push(Block {
                            rows: if i == 0 { b.rows } else { Some(0) },
                            bytes: w[1] - w[0],
                            source: Source::PlainCopy {
                                offset: w[0],
                                // Lines past the first part are not counted while reading;
                                // `locate` counts them when a row needs naming.
                                line: if i == 0 { line } else { 0 },
                                end: w[1],
                                first,
                            },
                            ..b.clone()
                        });
                    }
                }
                _ => out.push(b),
            }
        }
        out
    }

    /// The line of byte offset `o` of a plain dump, counting from `(start, line)`.
    pub(super) fn line_at(&self, (start, line): (u64, u64), o: u64) -> Option<At> {
        if line == 0 || o < start {
            return None;
        }
        let mut f = File::open(&self.path).ok()?;
        f.seek(SeekFrom::Start(start)).ok()?;
        let mut r = BufReader::with_capacity(1 << 20, f.take(o - start));
        let mut newlines = 0u64;
        loop {
            let buf = r.fill_buf().ok()?;
            if buf.is_empty() {
                break;
            }
            newlines += buf.iter().filter(|b| **b == b'\n').count() as u64;
            let n = buf.len();
            r.consume(n);
        }
        Some(At::Line(line + newlines))
    }

    pub(super) fn next_line_start(&self, from: u64, end: u64) -> Option<u64> {
        let mut f = File::open(&self.path).ok()?;
        f.seek(SeekFrom::Start(from)).ok()?;
        let mut r = BufReader::new(f.take(end - from));
        let mut skip = Vec::new();
        let n = r.read_until(b'\n', &mut skip).ok()?;
        Some(from + n as u64)
    }

    pub(super) fn plain_at(&self, offset: u64) -> Result<Box<dyn BufRead + Send>, ConnectorError> {
        let mut reader = self.plain_reader()?;
        if self.format == (DumpFormat::Plain { gzip: false }) {
            let mut f = File::open(&self.path).map_err(|e| io_err(&self.path, e))?;
            f.seek(SeekFrom::Start(offset))
                .map_err(|e| io_err(&self.path, e))?;
            return Ok(Box::new(BufReader::with_capacity(1 << 20, f)));
        }
        // A compressed stream cannot seek: decompress up to the block.
        std::io::copy(&mut (&mut reader).take(offset), &mut std::io::sink())
            .map_err(|e| io_err(&self.path, e))?;
        Ok(reader)
    }
}
