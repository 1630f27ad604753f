//! Splitting a plain SQL dump into statements without a SQL parser: a lexer that knows where
//! strings (`'…'`, `E'…'`), quoted identifiers, dollar quotes (function bodies) and comments
//! begin and end, so a `;` ends a statement only outside them. After `COPY … FROM stdin;` the
//! following lines are data up to `\.`, handed back as one block without being lexed.

use std::io::BufRead;
use std::ops::Range;

use etl_mappings::QualifiedName;

/// A statement and where it starts.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The text, comments removed, trimmed, without the final `;`.
    pub text: String,
    /// Byte offset of its first line.
    pub offset: u64,
    /// 1-based line of its first line.
    pub line: u64,
}

/// A COPY data block: its lines, between the COPY statement and `\.`.
#[derive(Debug, Clone, Copy)]
pub struct DataBlock {
    /// Byte offset of the first data line.
    pub offset: u64,
    /// 1-based line number of the first data line.
    pub line: u64,
    /// Byte offset just past the `\.` line.
    pub end: u64,
    /// Data rows.
    pub rows: u64,
}

/// Where the lexer is.
#[derive(Debug, Clone, PartialEq)]
enum State {
    Code,
    Single { escapes: bool },
    Double,
    Dollar(String),
    Block(u32),
}

/// The statement splitter over any buffered reader.
pub struct Scanner<R> {
    reader: R,
    offset: u64,
    line: u64,
    buf: Vec<u8>,
}

/// A scan problem: the 1-based line and what is wrong.
#[derive(Debug)]
pub struct ScanError {
    /// Line.
    pub line: u64,
    /// Byte offset.
    pub offset: u64,
    /// What.
    pub reason: String,
}

impl<R: BufRead> Scanner<R> {
    /// A scanner whose reader stands at byte `offset`, line `line`.
    pub fn new(reader: R, offset: u64, line: u64) -> Self {
        Scanner {
            reader,
            offset,
            line,
            buf: Vec::new(),
        }
    }

    /// The byte offset of the next unread line.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn read_line(&mut self) -> Result<bool, ScanError> {
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| ScanError {
                line: self.line + 1,
                offset: self.offset,
                reason: e.to_string(),
            })?;
        if n == 0 {
            return Ok(false);
        }
        self.offset += n as u64;
        self.line += 1;
        Ok(true)
    }

    /// The next statement, or `None` at the end of input.
    pub fn next_statement(&mut self) -> Result<Option<Statement>, ScanError> {
        let mut state = State::Code;
        let mut text = String::new();
        let mut start: Option<(u64, u64)> = None;
        // `;` ends a statement only outside parentheses (rule actions) and outside a
        // `BEGIN ATOMIC … END` function body, as psql's own scanner has it.
        let mut depth: i32 = 0;
        loop {
            let line_offset = self.offset;
            if !self.read_line()? {
                if text.trim().is_empty() {
                    return Ok(None);
                }
                let (offset, line) = start.unwrap_or((line_offset, self.line));
                return Err(ScanError {
                    line,
                    offset,
                    reason: format!(
                        "the dump ends inside a statement (truncated?): `{}`",
                        preview(&text)
                    ),
                });
            }
            let line = String::from_utf8_lossy(&self.buf).into_owned();
            if state == State::Code && start.is_none() && line.starts_with('\\') {
                // A psql meta-command (`\connect`, `\restrict`): one line, no semicolon.
                return Ok(Some(Statement {
                    text: line.trim().to_string(),
                    offset: line_offset,
                    line: self.line,
                }));
            }
            let bytes = line.as_bytes();
            let mut i = 0;
            let mut seg_start = 0;
            while i < bytes.len() {
                let c = bytes[i];
                match &mut state {
                    State::Code => match c {
                        b'-' if bytes.get(i + 1) == Some(&b'-') => {
                            text.push_str(&line[seg_start..i]);
                            i = bytes.len();
                            seg_start = i;
                            continue;
                        }
                        b'/' if bytes.get(i + 1) == Some(&b'*') => {
                            text.push_str(&line[seg_start..i]);
                            state = State::Block(1);
                            i += 2;
                            continue;
                        }
                        b'\'' => {
                            let escapes = i > 0
                                && matches!(bytes[i - 1], b'E' | b'e')
                                && (i < 2 || !bytes[i - 2].is_ascii_alphanumeric());
                            state = State::Single { escapes };
                        }
                        b'"' => state = State::Double,
                        b'$' => {
                            if let Some(tag) = dollar_tag(&bytes[i..]) {
                                let prev_ident = i > 0
                                    && (bytes[i - 1].is_ascii_alphanumeric()
                                        || bytes[i - 1] == b'_');
                                if !prev_ident {
                                    i += tag.len();
                                    state = State::Dollar(tag);
                                    continue;
                                }
                            }
                        }
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        b';' if depth > 0 || in_atomic_body(&text, &line[seg_start..i]) => {}
                        b';' => {
                            text.push_str(&line[seg_start..i]);
                            if start.is_none() {
                                start = Some((line_offset, self.line));
                            }
                            let rest = line[i + 1..].trim();
                            if !rest.is_empty() && !rest.starts_with("--") {
                                return Err(ScanError {
                                    line: self.line,
                                    offset: line_offset,
                                    reason: "more than one statement on a line".into(),
                                });
                            }
                            let (offset, line) = start.unwrap_or((line_offset, self.line));
                            let stmt = text.trim().to_string();
                            if stmt.is_empty() {
                                text.clear();
                                start = None;
                                i = bytes.len();
                                seg_start = i;
                                break;
                            }
                            return Ok(Some(Statement {
                                text: stmt,
                                offset,
                                line,
                            }));
                        }
                        _ => {
                            if start.is_none() && !c.is_ascii_whitespace() {
                                start = Some((line_offset, self.line));
                            }
                        }
                    },
                    State::Single { escapes } => match c {
                        b'\\' if *escapes => i += 1,
                        b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 1,
                        b'\'' => state = State::Code,
                        _ => {}
                    },
                    State::Double => {
                        if c == b'"' {
                            state = State::Code;
                        }
                    }
                    State::Dollar(tag) => {
                        if c == b'$' && bytes[i..].starts_with(tag.as_bytes()) {
                            i += tag.len();
                            state = State::Code;
                            continue;
                        }
                    }
                    State::Block(depth) => {
                        if c == b'*' && bytes.get(i + 1) == Some(&b'/') {
                            *depth -= 1;
                            i += 2;
                            if *depth == 0 {
                                state = State::Code;
                                seg_start = i;
                            }
                            continue;
                        }
                        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
                            *depth += 1;
                            i += 2;
                            continue;
                        }
                    }
                }
                i += 1;
            }
            if !matches!(state, State::Block(_)) && seg_start < bytes.len() {
                text.push_str(&line[seg_start..]);
            }
        }
    }

    /// Skips the COPY data that follows a `COPY … FROM stdin;`, checking that every line has
    /// `columns` fields, up to the `\.` line.
    pub fn copy_data(&mut self, columns: usize) -> Result<DataBlock, ScanError> {
        let block = DataBlock {
            offset: self.offset,
            line: self.line + 1,
            end: 0,
            rows: 0,
        };
        let mut rows = 0;
        loop {
            let at = self.offset;
            if !self.read_line()? {
                return Err(ScanError {
                    line: self.line,
                    offset: self.offset,
                    reason: format!(
                        "the dump ends inside COPY data that began on line {} (no `\\.` end marker: truncated?)",
                        block.line
                    ),
                });
            }
            let data = trim_newline(&self.buf);
            if data == b"\\." {
                return Ok(DataBlock {
                    end: self.offset,
                    rows,
                    ..block
                });
            }
            let fields = data.iter().filter(|b| **b == b'\t').count() + 1;
            if fields != columns {
                return Err(ScanError {
                    line: self.line,
                    offset: at,
                    reason: format!("a COPY row with {fields} fields where {columns} are expected"),
                });
            }
            rows += 1;
        }
    }

    /// The next raw line (without its newline), for reading data blocks.
    pub fn raw_line(&mut self) -> Result<Option<(&[u8], u64)>, ScanError> {
        if !self.read_line()? {
            return Ok(None);
        }
        Ok(Some((trim_newline(&self.buf), self.line)))
    }
}

/// Whether a `;` here is inside a SQL-standard function body (`BEGIN ATOMIC … END`) that has
/// not ended yet: the statement so far opens one and does not end with `END`.
fn in_atomic_body(text: &str, line_part: &str) -> bool {
    let so_far = format!("{text}{line_part}").to_ascii_uppercase();
    let Some(at) = so_far.find("BEGIN ATOMIC") else {
        return false;
    };
    let body = &so_far[at + "BEGIN ATOMIC".len()..];
    let opens = body.matches("BEGIN").count() + body.matches(" CASE ").count() + 1;
    let ends = body
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| *w == "END")
        .count();
    ends < opens
}

/// A line without its `\n` (and a `\r` before it).
pub fn trim_newline(b: &[u8]) -> &[u8] {
    let b = b.strip_suffix(b"\n").unwrap_or(b);
    b.strip_suffix(b"\r").unwrap_or(b)
}

fn dollar_tag(b: &[u8]) -> Option<String> {
    let end = b[1..].iter().position(|c| *c == b'$')? + 1;
    let inner = &b[1..end];
    if inner
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !inner.first().is_some_and(u8::is_ascii_digit)
    {
        Some(String::from_utf8_lossy(&b[..=end]).into_owned())
    } else {
        None
    }
}

fn preview(s: &str) -> String {
    let t: String = s.trim().chars().take(60).collect();
    t.replace('\n', " ")
}

/// Splits SQL text into words and punctuation for the DDL reader: identifiers (quoted ones
/// unquoted, others lower-cased), string literals (kept with their quotes), numbers, and single
/// punctuation characters. `::` stays one token.
pub fn tokens(s: &str) -> Vec<String> {
    spans(s).into_iter().map(|(t, _)| t).collect()
}

/// [`tokens`] with where each one sits in `s` (a byte range), so a reader can take the text
/// between two tokens as it was written (an expression, a type with its spacing).
pub fn spans(s: &str) -> Vec<(String, std::ops::Range<usize>)> {
    let b = s.as_bytes();
    let mut out: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c == b'"' {
            let mut v = String::from("\"");
            i += 1;
            while i < b.len() {
                if b[i] == b'"' {
                    if b.get(i + 1) == Some(&b'"') {
                        v.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                let ch_len = utf8_len(b[i]);
                v.push_str(&s[i..(i + ch_len).min(b.len())]);
                i += ch_len;
            }
            out.push((v, start..i));
        } else if c == b'\'' {
            i += 1;
            while i < b.len() {
                if b[i] == b'\'' {
                    if b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                i += 1;
            }
            out.push((s[start..i].to_string(), start..i));
        } else if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 {
            while i < b.len()
                && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$' || b[i] >= 0x80)
            {
                i += 1;
            }
            out.push((s[start..i].to_lowercase(), start..i));
        } else if c == b':' && b.get(i + 1) == Some(&b':') {
            out.push(("::".into(), start..i + 2));
            i += 2;
        } else {
            let ch_len = utf8_len(c);
            out.push((
                s[i..(i + ch_len).min(b.len())].to_string(),
                start..(i + ch_len).min(b.len()),
            ));
            i += ch_len;
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Words that end a column's type in `CREATE TABLE` (outside parentheses): its constraints,
/// default, collation, storage.
pub const TYPE_END_WORDS: [&str; 12] = [
    "collate",
    "default",
    "not",
    "null",
    "constraint",
    "generated",
    "check",
    "references",
    "primary",
    "unique",
    "compression",
    "storage",
];

/// The index of the `)` closing the `(` at position `open` of `toks`.
pub fn closing<'a>(toks: impl IntoIterator<Item = &'a str>, open: usize) -> Option<usize> {
    let mut depth = 0;
    for (j, t) in toks.into_iter().enumerate().skip(open) {
        match t {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// An identifier token as a name: quoted tokens keep their case (the leading `"` marks them).
pub fn ident(tok: &str) -> String {
    tok.strip_prefix('"').unwrap_or(tok).to_string()
}

/// One statement, tokenized with each token's place in the text.
pub(super) struct Stmt<'a> {
    pub(super) text: &'a str,
    pub(super) toks: Vec<(String, Range<usize>)>,
}

impl<'a> Stmt<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let text = text.trim().trim_end_matches(';').trim_end();
        Stmt {
            text,
            toks: spans(text),
        }
    }

    pub(super) fn w(&self, i: usize) -> &str {
        self.toks.get(i).map_or("", |t| t.0.as_str())
    }

    pub(super) fn is(&self, i: usize, words: &[&str]) -> bool {
        words.iter().enumerate().all(|(k, w)| self.w(i + k) == *w)
    }

    /// A possibly schema-qualified name at `*i` (unqualified: `public`).
    pub(super) fn qname(&self, i: &mut usize) -> Option<QualifiedName> {
        let first = ident(&self.toks.get(*i)?.0);
        *i += 1;
        if self.w(*i) == "." {
            let second = ident(&self.toks.get(*i + 1)?.0);
            *i += 2;
            Some(QualifiedName::new(first, second))
        } else {
            Some(QualifiedName::new("public", first))
        }
    }

    /// The text of tokens `from..to` as written.
    pub(super) fn slice(&self, from: usize, to: usize) -> String {
        match (
            self.toks.get(from),
            to.checked_sub(1).and_then(|t| self.toks.get(t)),
        ) {
            (Some(a), Some(b)) if from < to => self.text[a.1.start..b.1.end].trim().to_string(),
            _ => String::new(),
        }
    }

    /// The text from token `from` to the end.
    pub(super) fn rest(&self, from: usize) -> String {
        self.slice(from, self.toks.len())
    }

    /// The index of the `)` closing the `(` at `open`.
    pub(super) fn closing(&self, open: usize) -> Option<usize> {
        closing(self.toks.iter().map(|t| t.0.as_str()), open)
    }

    /// Token ranges of the comma-separated items in `from..to`, split at depth 0.
    pub(super) fn items(&self, from: usize, to: usize) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let (mut depth, mut start) = (0i32, from);
        for j in from..to {
            match self.w(j) {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                "," if depth == 0 => {
                    out.push(start..j);
                    start = j + 1;
                }
                _ => {}
            }
        }
        if start < to {
            out.push(start..to);
        }
        out
    }

    /// The first token in `from..to` at depth 0 that is one of `words`.
    pub(super) fn find(&self, from: usize, to: usize, words: &[&str]) -> Option<usize> {
        let mut depth = 0i32;
        for j in from..to {
            match self.w(j) {
                "(" | "[" => depth += 1,
                ")" | "]" => depth -= 1,
                w if depth == 0 && words.contains(&w) => return Some(j),
                _ => {}
            }
        }
        None
    }
}

/// A string literal's value (`'it''s'` → `it's`).
pub(super) fn literal(tok: &str) -> Option<String> {
    let inner = tok.strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Vec<String> {
        let mut sc = Scanner::new(s.as_bytes(), 0, 0);
        let mut out = Vec::new();
        while let Some(st) = sc.next_statement().unwrap() {
            out.push(st.text);
        }
        out
    }

    #[test]
    fn splits_around_strings_comments_and_dollar_quotes() {
        let sql = "-- header\nSET x = 'a;b';\nCREATE FUNCTION f() RETURNS int AS $_$ SELECT 1; $_$;\n/* c; */ SELECT E'it\\'s;';\nSELECT \"we;ird\";\n";
        assert_eq!(
            all(sql),
            vec![
                "SET x = 'a;b'",
                "CREATE FUNCTION f() RETURNS int AS $_$ SELECT 1; $_$",
                "SELECT E'it\\'s;'",
                "SELECT \"we;ird\""
            ]
        );
    }

    #[test]
    fn rules_and_atomic_bodies_stay_one_statement() {
        let sql = "CREATE RULE r AS ON INSERT TO public.v DO INSTEAD (INSERT INTO public.a VALUES (new.x);\n INSERT INTO public.b (x)\n VALUES (new.x);\n);\nCREATE FUNCTION f() RETURNS void LANGUAGE sql\n    BEGIN ATOMIC\n INSERT INTO public.a VALUES (1);\n INSERT INTO public.b VALUES (2);\nEND;\nSELECT 1;\n";
        let got = all(sql);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].starts_with("CREATE RULE") && got[1].starts_with("CREATE FUNCTION"));
        assert_eq!(got[2], "SELECT 1");
    }

    #[test]
    fn copy_blocks_are_skipped_and_checked() {
        let sql = "COPY public.t (a, b) FROM stdin;\n1\tx\n2\t\\N\n\\.\nSELECT 1;\n";
        let mut sc = Scanner::new(sql.as_bytes(), 0, 0);
        let st = sc.next_statement().unwrap().unwrap();
        assert!(st.text.starts_with("COPY"));
        let block = sc.copy_data(2).unwrap();
        assert_eq!((block.line, block.rows), (2, 2));
        assert_eq!(sc.next_statement().unwrap().unwrap().text, "SELECT 1");
        let truncated = "COPY public.t (a) FROM stdin;\n1\n2\n";
        let mut sc = Scanner::new(truncated.as_bytes(), 0, 0);
        sc.next_statement().unwrap();
        let e = sc.copy_data(1).unwrap_err();
        assert!(e.reason.contains("truncated"), "{}", e.reason);
        let bad = "COPY public.t (a, b) FROM stdin;\n1\tx\n2\n\\.\n";
        let mut sc = Scanner::new(bad.as_bytes(), 0, 0);
        sc.next_statement().unwrap();
        assert_eq!(sc.copy_data(2).unwrap_err().line, 3);
    }

    #[test]
    fn tokens_split_ddl() {
        assert_eq!(
            tokens("CREATE TABLE public.\"My T\" (id bigint DEFAULT 'a''b'::text)"),
            vec![
                "create", "table", "public", ".", "\"My T", "(", "id", "bigint", "default",
                "'a''b'", "::", "text", ")"
            ]
        );
    }
}
