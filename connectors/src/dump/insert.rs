//! The VALUES of an INSERT statement (`--inserts`, `--column-inserts`, `--rows-per-insert`
//! dumps) as tuples of SQL literals turned into COPY-like text: quoted strings unescaped
//! (`''`, `E'…'` escapes), casts (`'[1,2]'::public.vector`) and bit strings (`B'0101'`) stripped to
//! their value, NULL as absent. Beside `sql.rs`, which finds where a statement ends.

/// The text after the `VALUES` keyword (outside quotes).
pub(super) fn find_values(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'\'' || b[i] == b'"' {
                    quote = Some(b[i]);
                } else if b[i..].len() >= 6
                    && b[i..i + 6].eq_ignore_ascii_case(b"values")
                    && (i == 0 || !is_ident(b[i - 1]))
                    && !b.get(i + 6).copied().is_some_and(is_ident)
                {
                    return Some(&s[i + 6..]);
                }
            }
        }
        i += 1;
    }
    None
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Splits `(a, 'b', NULL), (…)` into rows of literal texts (`None` for NULL).
pub(super) fn tuples(s: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let b = s.as_bytes();
    let mut rows = Vec::new();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        if b[i] != b'(' {
            return Err(format!("unexpected `{}` in INSERT values", b[i] as char));
        }
        i += 1;
        let mut row = Vec::new();
        loop {
            skip_ws(&mut i);
            let (value, next) = literal(s, i)?;
            row.push(value);
            i = next;
            skip_ws(&mut i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b')') => {
                    i += 1;
                    break;
                }
                _ => return Err("an unterminated INSERT tuple".into()),
            }
        }
        rows.push(row);
        skip_ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            None => break,
            // `--on-conflict-do-nothing`
            Some(_) if s[i..].trim().eq_ignore_ascii_case("on conflict do nothing") => break,
            Some(c) => return Err(format!("unexpected `{}` after an INSERT tuple", *c as char)),
        }
    }
    Ok(rows)
}

/// One literal at `i`: a quoted string (`'…'`, `E'…'`, `B'…'`, `X'…'`, with an optional
/// `::type` cast), NULL, or a bare word/number. Returns it and the index after it.
fn literal(s: &str, mut i: usize) -> Result<(Option<String>, usize), String> {
    let b = s.as_bytes();
    let mut escapes = false;
    if i + 1 < b.len()
        && b[i + 1] == b'\''
        && matches!(b[i], b'E' | b'e' | b'B' | b'b' | b'X' | b'x')
    {
        escapes = matches!(b[i], b'E' | b'e');
        i += 1;
    }
    let value = if b.get(i) == Some(&b'\'') {
        i += 1;
        let mut v = Vec::new();
        loop {
            match b.get(i) {
                None => return Err("an unterminated string in INSERT values".into()),
                Some(b'\'') if b.get(i + 1) == Some(&b'\'') => {
                    v.push(b'\'');
                    i += 2;
                }
                Some(b'\'') => {
                    i += 1;
                    break;
                }
                Some(b'\\') if escapes => {
                    let e = *b.get(i + 1).ok_or("a dangling backslash")?;
                    v.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'b' => 8,
                        b'f' => 12,
                        other => other,
                    });
                    i += 2;
                }
                Some(c) => {
                    v.push(*c);
                    i += 1;
                }
            }
        }
        Some(String::from_utf8(v).map_err(|_| "invalid UTF-8 in a string")?)
    } else {
        let start = i;
        let mut depth = 0;
        while i < b.len() {
            match b[i] {
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                b',' if depth == 0 => break,
                _ => {}
            }
            i += 1;
        }
        let word = s[start..i].trim();
        if word.eq_ignore_ascii_case("null") {
            None
        } else if word.eq_ignore_ascii_case("default") {
            // A generated column's place in `--inserts` dumps: no value.
            None
        } else {
            Some(word.to_string())
        }
    };
    // A cast after the literal: `'…'::public.vector`.
    if b.get(i) == Some(&b':') && b.get(i + 1) == Some(&b':') {
        while i < b.len() && b[i] != b',' && b[i] != b')' {
            i += 1;
        }
    }
    Ok((value, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_tuples_parse() {
        let rows = tuples(" (1, 'it''s', NULL, true, -2.5e3, B'0101'), (2, E'a\\nb', '[1,2]'::public.vector, false, 0, NULL)").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][1].as_deref(), Some("it's"));
        assert_eq!(rows[0][2], None);
        assert_eq!(rows[0][4].as_deref(), Some("-2.5e3"));
        assert_eq!(rows[0][5].as_deref(), Some("0101"));
        assert_eq!(rows[1][1].as_deref(), Some("a\nb"));
        assert_eq!(rows[1][2].as_deref(), Some("[1,2]"));
        assert!(tuples("(1, 'x").is_err());
        assert_eq!(
            find_values("INSERT INTO public.t (\"values\") VALUES (1)"),
            Some(" (1)")
        );
    }
}
