//! One line of COPY's text format split into its fields: tab-separated, `\N` for NULL,
//! backslash escapes (`\t \n \r \b \f \v \\`, octal `\ooo`, hex `\xHH`) undone.

/// The fields of one line, unescaped into one buffer.
#[derive(Debug, Default)]
pub struct CopyLine {
    buf: Vec<u8>,
    fields: Vec<Option<(usize, usize)>>,
}

impl CopyLine {
    /// Splits `line` (without its newline). Returns the number of fields.
    pub fn parse(&mut self, line: &[u8]) -> usize {
        self.buf.clear();
        self.fields.clear();
        for raw in line.split(|b| *b == b'\t') {
            if raw == b"\\N" {
                self.fields.push(None);
                continue;
            }
            let start = self.buf.len();
            unescape(raw, &mut self.buf);
            self.fields.push(Some((start, self.buf.len())));
        }
        self.fields.len()
    }

    /// Empties the line, to be filled with [`CopyLine::push`].
    pub fn clear(&mut self) {
        self.buf.clear();
        self.fields.clear();
    }

    /// Appends a field that needs no unescaping.
    pub fn push(&mut self, field: Option<&str>) {
        match field {
            None => self.fields.push(None),
            Some(v) => {
                let start = self.buf.len();
                self.buf.extend_from_slice(v.as_bytes());
                self.fields.push(Some((start, self.buf.len())));
            }
        }
    }

    /// Field `i`: `None` is NULL.
    pub fn field(&self, i: usize) -> Option<&[u8]> {
        self.fields
            .get(i)
            .copied()
            .flatten()
            .map(|(a, b)| &self.buf[a..b])
    }
}

fn unescape(raw: &[u8], out: &mut Vec<u8>) {
    if !raw.contains(&b'\\') {
        out.extend_from_slice(raw);
        return;
    }
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' || i + 1 == raw.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = raw[i + 1];
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match raw.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' if raw.get(i).is_some_and(u8::is_ascii_hexdigit) => {
                let mut v = 0u32;
                for _ in 0..2 {
                    match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_unescapes() {
        let mut l = CopyLine::default();
        assert_eq!(l.parse(b"1\t\\N\ta\\tb\\\\c\\nd\t\\101\\x41\t"), 5);
        assert_eq!(l.field(0), Some(&b"1"[..]));
        assert_eq!(l.field(1), None);
        assert_eq!(l.field(2), Some(&b"a\tb\\c\nd"[..]));
        assert_eq!(l.field(3), Some(&b"AA"[..]));
        assert_eq!(l.field(4), Some(&b""[..]));
    }
}
