//! Postgres' text output of a value (as COPY text, INSERT literals and CSV carry it) turned into
//! the binary wire form, so that dumps and files go through the very decoders the live binary
//! COPY uses and produce the same Arrow values, bit for bit.

use half::f16;

use crate::postgres::ReadKind;

/// How a column's text becomes the field the decoder takes.
#[derive(Debug, Clone, PartialEq)]
pub enum TextField {
    /// Encode to the binary form of this kind.
    Binary(ReadKind),
    /// Keep the text (the live source selects these as `::text`).
    AsText,
    /// `inet` (or a one-dimensional `inet[]` with `array`) as its `::text` cast writes it: the
    /// live source selects it so, and the cast always shows the mask (`10.0.0.1/32`).
    InetText {
        /// An array of inet.
        array: bool,
    },
    /// A multi-dimensional array, as `array_to_json` writes it; `quote` says whether the
    /// elements are JSON strings (false: numbers, booleans).
    ArrayJson {
        /// Elements are strings.
        quote: bool,
        /// Elements are booleans (`t`/`f` become `true`/`false`).
        boolean: bool,
    },
}

type R = Result<(), String>;

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "invalid UTF-8".to_string())
}

/// Encodes the text `s` into `out` (cleared first) for `field`.
pub fn encode(field: &TextField, s: &[u8], out: &mut Vec<u8>) -> R {
    out.clear();
    match field {
        TextField::AsText => {
            out.extend_from_slice(s);
            Ok(())
        }
        TextField::ArrayJson { quote, boolean } => {
            let text = utf8(s)?;
            let mut json = String::new();
            array_json(text, *quote, *boolean, &mut json)?;
            out.extend_from_slice(json.as_bytes());
            Ok(())
        }
        TextField::InetText { array: false } => {
            let text = utf8(s)?;
            inet_text(text, out);
            Ok(())
        }
        TextField::InetText { array: true } => {
            let text = utf8(s)?;
            let mut fixed = String::from("{");
            let items = parse_array(text)?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    fixed.push(',');
                }
                match item {
                    Node::Leaf(Some(v)) => {
                        let mut b = Vec::new();
                        inet_text(v, &mut b);
                        fixed.push_str(&String::from_utf8_lossy(&b));
                    }
                    Node::Leaf(None) => fixed.push_str("NULL"),
                    Node::List(_) => return Err("a multi-dimensional inet array".into()),
                }
            }
            fixed.push('}');
            array(&ReadKind::Text, &fixed, out)
        }
        TextField::Binary(kind) => binary(kind, s, out),
    }
}

fn inet_text(v: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(v.as_bytes());
    if !v.contains('/') {
        out.extend_from_slice(if v.contains(':') { b"/128" } else { b"/32" });
    }
}

fn binary(kind: &ReadKind, s: &[u8], out: &mut Vec<u8>) -> R {
    let text = || utf8(s).map(str::trim);
    match kind {
        ReadKind::Bool => {
            let v = match text()? {
                "t" | "true" | "TRUE" | "True" | "1" | "y" | "yes" | "on" => 1,
                "f" | "false" | "FALSE" | "False" | "0" | "n" | "no" | "off" => 0,
                other => return Err(format!("`{other}` is not a boolean")),
            };
            out.push(v);
        }
        ReadKind::Int16 => out.extend_from_slice(&int::<i16>(text()?, "smallint")?.to_be_bytes()),
        ReadKind::Int32 => out.extend_from_slice(&int::<i32>(text()?, "integer")?.to_be_bytes()),
        ReadKind::Int64 => out.extend_from_slice(&int::<i64>(text()?, "bigint")?.to_be_bytes()),
        ReadKind::Float32 => out.extend_from_slice(&float(text()?)?.to_bits().to_be_bytes()),
        ReadKind::Float64 => out.extend_from_slice(&double(text()?)?.to_bits().to_be_bytes()),
        ReadKind::Text | ReadKind::Json => out.extend_from_slice(s),
        ReadKind::Jsonb => {
            out.push(1);
            out.extend_from_slice(s);
        }
        ReadKind::Numeric => numeric(text()?, out)?,
        ReadKind::Uuid => uuid(text()?, out)?,
        ReadKind::Date => out.extend_from_slice(&date(text()?)?.to_be_bytes()),
        ReadKind::Timestamp => out.extend_from_slice(&timestamp(text()?, false)?.to_be_bytes()),
        ReadKind::TimestampTz => out.extend_from_slice(&timestamp(text()?, true)?.to_be_bytes()),
        ReadKind::Time => {
            let (t, _) = time(text()?, false)?;
            out.extend_from_slice(&t.to_be_bytes());
        }
        ReadKind::TimeTz => {
            let (t, east) = time(text()?, true)?;
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&(-east).to_be_bytes());
        }
        ReadKind::Bytea => bytea(s, out)?,
        ReadKind::Vector(_) | ReadKind::HalfVec(_) => {
            let half = matches!(kind, ReadKind::HalfVec(_));
            let body = text()?;
            let inner = body
                .strip_prefix('[')
                .and_then(|b| b.strip_suffix(']'))
                .ok_or_else(|| format!("`{}` is not a vector ([x,y,…])", clip(body)))?;
            out.extend_from_slice(&[0, 0, 0, 0]);
            let mut n: usize = 0;
            for part in inner.split(',').filter(|p| !p.trim().is_empty()) {
                let v = float(part.trim())?;
                if half {
                    out.extend_from_slice(&f16::from_f32(v).to_bits().to_be_bytes());
                } else {
                    out.extend_from_slice(&v.to_bits().to_be_bytes());
                }
                n += 1;
            }
            let n = u16::try_from(n).map_err(|_| "vector longer than 65535".to_string())?;
            out[0..2].copy_from_slice(&n.to_be_bytes());
        }
        ReadKind::SparseVec => sparse(text()?, out)?,
        ReadKind::Bit(bytes) => {
            let bits = text()?;
            if bits.len() != *bytes as usize * 8 {
                return Err(format!(
                    "bit string of length {} in a bit({}) column",
                    bits.len(),
                    bytes * 8
                ));
            }
            out.extend_from_slice(&(bytes * 8).to_be_bytes());
            for chunk in bits.as_bytes().chunks(8) {
                let mut byte = 0u8;
                for (i, c) in chunk.iter().enumerate() {
                    match c {
                        b'1' => byte |= 0x80 >> i,
                        b'0' => {}
                        _ => return Err(format!("`{}` is not a bit string", clip(bits))),
                    }
                }
                out.push(byte);
            }
        }
        ReadKind::Array(elem) => array(elem, text()?, out)?,
    }
    Ok(())
}

fn clip(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn int<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.parse::<T>()
        .map_err(|_| format!("`{}` is not a valid {what}", clip(s)))
}

fn special(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "nan" => Some(f64::NAN),
        "infinity" | "inf" | "+infinity" | "+inf" => Some(f64::INFINITY),
        "-infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

fn float(s: &str) -> Result<f32, String> {
    if let Some(v) = special(s) {
        return Ok(v as f32);
    }
    s.parse::<f32>()
        .map_err(|_| format!("`{}` is not a valid real", clip(s)))
}

fn double(s: &str) -> Result<f64, String> {
    if let Some(v) = special(s) {
        return Ok(v);
    }
    s.parse::<f64>()
        .map_err(|_| format!("`{}` is not a valid double precision", clip(s)))
}

/// Text numeric → binary numeric (base-10000 digits, weight, sign, display scale).
fn numeric(s: &str, out: &mut Vec<u8>) -> R {
    let head = |sign: u16, out: &mut Vec<u8>| {
        for v in [0u16, 0, sign, 0] {
            out.extend_from_slice(&v.to_be_bytes());
        }
    };
    match s.to_ascii_lowercase().as_str() {
        "nan" => {
            head(0xC000, out);
            return Ok(());
        }
        "infinity" | "+infinity" => {
            head(0xD000, out);
            return Ok(());
        }
        "-infinity" => {
            head(0xF000, out);
            return Ok(());
        }
        _ => {}
    }
    let bad = || format!("`{}` is not a valid numeric", clip(s));
    let (neg, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().map_err(|_| bad())?),
        None => (rest, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // All digits, and where the decimal point sits after the exponent.
    let digits: Vec<u8> = int_part
        .bytes()
        .chain(frac_part.bytes())
        .map(|b| b - b'0')
        .collect();
    let point = int_part.len() as i64 + exp;
    let dscale = (frac_part.len() as i64 - exp).max(0);
    // Align to groups of four around the point: pad on the left so `point` is a multiple of 4.
    let pad_left = (4 - point.rem_euclid(4)) % 4;
    let mut aligned: Vec<u8> = vec![0; pad_left as usize];
    aligned.extend_from_slice(&digits);
    // The point now sits on a group boundary; the group just before it has weight 0.
    let mut weight = (point + pad_left) / 4 - 1;
    while !aligned.len().is_multiple_of(4) {
        aligned.push(0);
    }
    let mut groups: Vec<u16> = aligned
        .chunks(4)
        .map(|c| c.iter().fold(0u16, |a, d| a * 10 + u16::from(*d)))
        .collect();
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let weight = i16::try_from(weight).map_err(|_| bad())?;
    let dscale = u16::try_from(dscale).map_err(|_| bad())?;
    let n = u16::try_from(groups.len()).map_err(|_| bad())?;
    let sign: u16 = if neg && !groups.is_empty() { 0x4000 } else { 0 };
    for v in [n, weight as u16, sign, dscale] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

fn uuid(s: &str, out: &mut Vec<u8>) -> R {
    let hex: Vec<u8> = s
        .trim_matches(|c| c == '{' || c == '}')
        .bytes()
        .filter(|b| *b != b'-')
        .collect();
    if hex.len() != 32 {
        return Err(format!("`{}` is not a valid uuid", clip(s)));
    }
    for pair in hex.chunks(2) {
        let h = std::str::from_utf8(pair).map_err(|_| "invalid uuid".to_string())?;
        out.push(
            u8::from_str_radix(h, 16).map_err(|_| format!("`{}` is not a valid uuid", clip(s)))?,
        );
    }
    Ok(())
}

/// Days from 2000-01-01 to the proleptic Gregorian date (astronomical year: 1 BC = 0).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 730_425
}

/// Splits a trailing " BC".
fn strip_bc(s: &str) -> (&str, bool) {
    match s.strip_suffix(" BC") {
        Some(rest) => (rest.trim_end(), true),
        None => (s, false),
    }
}

fn ymd(s: &str, bc: bool) -> Result<i64, String> {
    let bad = || format!("`{}` is not an ISO date", clip(s));
    let mut it = s.splitn(3, '-');
    let y: i64 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let m: u32 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let d: u32 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let year = if bc { 1 - y } else { y };
    Ok(days_from_civil(year, m, d))
}

fn date(s: &str) -> Result<i32, String> {
    match s {
        "infinity" => return Ok(i32::MAX),
        "-infinity" => return Ok(i32::MIN),
        _ => {}
    }
    let (body, bc) = strip_bc(s);
    i32::try_from(ymd(body, bc)?).map_err(|_| format!("date `{s}` out of range"))
}

/// `HH:MM[:SS[.ffffff]]` → microseconds.
fn clock(s: &str) -> Result<i64, String> {
    let bad = || format!("`{}` is not a time of day", clip(s));
    let mut it = s.splitn(3, ':');
    let h: i64 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let m: i64 = it.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let (sec, frac) = match it.next() {
        Some(rest) => rest.split_once('.').unwrap_or((rest, "")),
        None => ("0", ""),
    };
    let sec: i64 = sec.parse().map_err(|_| bad())?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let mut us: i64 = 0;
    for (i, d) in frac.bytes().enumerate() {
        us += i64::from(d - b'0') * 10i64.pow(5 - i as u32);
    }
    Ok(((h * 60 + m) * 60 + sec) * 1_000_000 + us)
}

/// Splits a trailing zone offset `+HH[:MM[:SS]]` / `-…` / `Z`: returns (rest, seconds east).
fn zone(s: &str) -> Result<(&str, i32), String> {
    if let Some(rest) = s.strip_suffix('Z') {
        return Ok((rest, 0));
    }
    let at = s
        .rfind(['+', '-'])
        .filter(|i| *i > 0)
        .ok_or_else(|| format!("`{}` has no time zone offset", clip(s)))?;
    let (rest, z) = s.split_at(at);
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let mut secs = 0i32;
    for (i, part) in z[1..].split(':').enumerate() {
        let v: i32 = part
            .parse()
            .map_err(|_| format!("`{}` has a bad time zone offset", clip(s)))?;
        secs += v * [3600, 60, 1].get(i).copied().unwrap_or(0);
    }
    Ok((rest, sign * secs))
}

fn timestamp(s: &str, tz: bool) -> Result<i64, String> {
    match s {
        "infinity" => return Ok(i64::MAX),
        "-infinity" => return Ok(i64::MIN),
        _ => {}
    }
    let (body, bc) = strip_bc(s);
    let (d, t) = body
        .split_once([' ', 'T'])
        .ok_or_else(|| format!("`{}` is not an ISO timestamp", clip(s)))?;
    let (t, east) = if tz { zone(t)? } else { (t, 0) };
    let days = ymd(d, bc)?;
    Ok(days * 86_400_000_000 + clock(t)? - i64::from(east) * 1_000_000)
}

fn time(s: &str, tz: bool) -> Result<(i64, i32), String> {
    let (t, east) = if tz { zone(s)? } else { (s, 0) };
    Ok((clock(t)?, east))
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn bytea(s: &[u8], out: &mut Vec<u8>) -> R {
    if let Some(hex) = s.strip_prefix(b"\\x") {
        if hex.len() % 2 != 0 {
            return Err("bytea hex has an odd number of digits".into());
        }
        for pair in hex.chunks(2) {
            let v = hex_digit(pair[0])
                .zip(hex_digit(pair[1]))
                .ok_or_else(|| "bytea hex has a non-hex digit".to_string())?;
            out.push(v.0 << 4 | v.1);
        }
        return Ok(());
    }
    // The escape format: `\\` and `\ooo`.
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            if s.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            let oct = s
                .get(i + 1..i + 4)
                .filter(|o| o.iter().all(|b| (b'0'..=b'7').contains(b)))
                .ok_or_else(|| "bad escape in bytea".to_string())?;
            out.push((oct[0] - b'0') << 6 | (oct[1] - b'0') << 3 | (oct[2] - b'0'));
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(())
}

/// `{i:v,…}/dim` with 1-based indices → the binary sparsevec (0-based).
fn sparse(s: &str, out: &mut Vec<u8>) -> R {
    let bad = || format!("`{}` is not a sparsevec ({{i:v,…}}/dim)", clip(s));
    let (body, dim) = s.rsplit_once('/').ok_or_else(bad)?;
    let dim: i32 = dim.trim().parse().map_err(|_| bad())?;
    let inner = body
        .trim()
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(bad)?;
    let mut idx = Vec::new();
    let mut vals = Vec::new();
    for pair in inner.split(',').filter(|p| !p.trim().is_empty()) {
        let (i, v) = pair.split_once(':').ok_or_else(bad)?;
        let i: i32 = i.trim().parse().map_err(|_| bad())?;
        idx.push(i - 1);
        vals.push(float(v.trim())?);
    }
    out.extend_from_slice(&dim.to_be_bytes());
    out.extend_from_slice(&(idx.len() as i32).to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
    for i in idx {
        out.extend_from_slice(&i.to_be_bytes());
    }
    for v in vals {
        out.extend_from_slice(&v.to_bits().to_be_bytes());
    }
    Ok(())
}

/// An element of an array literal: `None` is NULL.
type Elem = Option<String>;

/// A parsed array literal: elements or nested arrays.
enum Node {
    Leaf(Elem),
    List(Vec<Node>),
}

/// Parses Postgres' array text (`{1,2,"a b",NULL}`, nested braces, an optional `[l:u]=`
/// dimension prefix).
fn parse_array(s: &str) -> Result<Vec<Node>, String> {
    let bad = || format!("`{}` is not an array literal", clip(s));
    let s = match s.find("={") {
        Some(i) if s.starts_with('[') => &s[i + 1..],
        _ => s,
    };
    let b = s.as_bytes();
    let mut i = 0;
    let node = parse_list(b, &mut i).ok_or_else(bad)?;
    if i != b.len() {
        return Err(bad());
    }
    Ok(node)
}

fn parse_list(b: &[u8], i: &mut usize) -> Option<Vec<Node>> {
    if b.get(*i) != Some(&b'{') {
        return None;
    }
    *i += 1;
    let mut items = Vec::new();
    if b.get(*i) == Some(&b'}') {
        *i += 1;
        return Some(items);
    }
    loop {
        while b.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
        match b.get(*i)? {
            b'{' => items.push(Node::List(parse_list(b, i)?)),
            b'"' => {
                *i += 1;
                let mut v = Vec::new();
                loop {
                    match b.get(*i)? {
                        b'\\' => {
                            v.push(*b.get(*i + 1)?);
                            *i += 2;
                        }
                        b'"' => {
                            *i += 1;
                            break;
                        }
                        c => {
                            v.push(*c);
                            *i += 1;
                        }
                    }
                }
                items.push(Node::Leaf(Some(String::from_utf8(v).ok()?)));
            }
            _ => {
                let start = *i;
                let mut v = Vec::new();
                while let Some(c) = b.get(*i) {
                    match c {
                        b',' | b'}' => break,
                        b'\\' => {
                            v.push(*b.get(*i + 1)?);
                            *i += 2;
                        }
                        c => {
                            v.push(*c);
                            *i += 1;
                        }
                    }
                }
                let raw = String::from_utf8(v).ok()?;
                let t = raw.trim();
                let quoted_escape = b[start..*i].contains(&b'\\');
                if t.eq_ignore_ascii_case("NULL") && !quoted_escape {
                    items.push(Node::Leaf(None));
                } else {
                    items.push(Node::Leaf(Some(t.to_string())));
                }
            }
        }
        while b.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
        match b.get(*i)? {
            b',' => *i += 1,
            b'}' => {
                *i += 1;
                return Some(items);
            }
            _ => return None,
        }
    }
}

fn array(elem: &ReadKind, s: &str, out: &mut Vec<u8>) -> R {
    let items = parse_array(s)?;
    if items.is_empty() {
        out.extend_from_slice(&[0; 12]);
        return Ok(());
    }
    let mut leaves = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Node::Leaf(e) => leaves.push(e),
            Node::List(_) => {
                return Err(
                    "a multi-dimensional value in a column declared one-dimensional; map it with `type: JSON`"
                        .into(),
                );
            }
        }
    }
    let has_null = leaves.iter().any(Option::is_none);
    for v in [1i32, i32::from(has_null), 0, leaves.len() as i32, 1] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    let mut scratch = Vec::new();
    for leaf in leaves {
        match leaf {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                scratch.clear();
                binary(elem, v.as_bytes(), &mut scratch)?;
                out.extend_from_slice(&(scratch.len() as i32).to_be_bytes());
                out.extend_from_slice(&scratch);
            }
        }
    }
    Ok(())
}

fn array_json(s: &str, quote: bool, boolean: bool, out: &mut String) -> R {
    fn write(nodes: &[Node], quote: bool, boolean: bool, out: &mut String) {
        out.push('[');
        for (i, n) in nodes.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match n {
                Node::List(inner) => write(inner, quote, boolean, out),
                Node::Leaf(None) => out.push_str("null"),
                Node::Leaf(Some(v)) if boolean => {
                    out.push_str(if v == "t" { "true" } else { "false" })
                }
                Node::Leaf(Some(v)) if quote => {
                    out.push_str(&serde_json::Value::String(v.clone()).to_string())
                }
                Node::Leaf(Some(v)) => out.push_str(v),
            }
        }
        out.push(']');
    }
    let nodes = parse_array(s)?;
    write(&nodes, quote, boolean, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::ColumnDecoder;
    use datafusion::arrow::array::{Array, StringArray};

    fn via_decoder(kind: ReadKind, text: &str) -> String {
        let mut bin = Vec::new();
        encode(&TextField::Binary(kind.clone()), text.as_bytes(), &mut bin).unwrap();
        let mut d = ColumnDecoder::new(&kind);
        d.append(Some(&bin)).unwrap();
        let a = d.finish();
        let s = a.as_any().downcast_ref::<StringArray>().unwrap();
        s.value(0).to_string()
    }

    #[test]
    fn numerics_round_trip_through_the_binary_decoder() {
        for v in [
            "0",
            "1",
            "-1",
            "1234.5678",
            "-0.00050",
            "0.00",
            "700000000",
            "12345678901234567890.123",
            "NaN",
            "Infinity",
            "-Infinity",
            "0.0001",
            "10000",
            "99999.99990",
        ] {
            assert_eq!(via_decoder(ReadKind::Numeric, v), v, "{v}");
        }
        assert_eq!(via_decoder(ReadKind::Numeric, "1.5e3"), "1500");
    }

    #[test]
    fn dates_and_times_match_the_live_text() {
        assert_eq!(via_decoder(ReadKind::Date, "2000-01-01"), "2000-01-01");
        assert_eq!(via_decoder(ReadKind::Date, "1999-12-31"), "1999-12-31");
        assert_eq!(
            via_decoder(ReadKind::Date, "0044-03-15 BC"),
            "0044-03-15 BC"
        );
        assert_eq!(via_decoder(ReadKind::Date, "infinity"), "infinity");
        assert_eq!(
            via_decoder(ReadKind::Timestamp, "2024-02-29 13:45:01.25"),
            "2024-02-29T13:45:01.25"
        );
        assert_eq!(
            via_decoder(ReadKind::TimestampTz, "2024-02-29 13:45:01+05:30"),
            "2024-02-29T08:15:01+00:00"
        );
        assert_eq!(
            via_decoder(ReadKind::Time, "23:59:59.999999"),
            "23:59:59.999999"
        );
        assert_eq!(via_decoder(ReadKind::TimeTz, "01:00:00+02"), "01:00:00+02");
        assert_eq!(
            via_decoder(ReadKind::TimeTz, "00:00:00-05:30"),
            "00:00:00-05:30"
        );
        assert_eq!(
            via_decoder(ReadKind::Uuid, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
        );
    }

    #[test]
    fn vectors_arrays_and_bits_encode() {
        let mut out = Vec::new();
        encode(
            &TextField::Binary(ReadKind::Vector(Some(2))),
            b"[1.5,-2]",
            &mut out,
        )
        .unwrap();
        assert_eq!(out[..2], [0, 2]);
        assert_eq!(
            f32::from_bits(u32::from_be_bytes(out[4..8].try_into().unwrap())),
            1.5
        );
        encode(
            &TextField::Binary(ReadKind::SparseVec),
            b"{1:0.5,3:2}/5",
            &mut out,
        )
        .unwrap();
        assert_eq!(i32::from_be_bytes(out[0..4].try_into().unwrap()), 5);
        assert_eq!(i32::from_be_bytes(out[12..16].try_into().unwrap()), 0);
        encode(&TextField::Binary(ReadKind::Bit(1)), b"10000001", &mut out).unwrap();
        assert_eq!(out[4], 0x81);
        let arr = TextField::Binary(ReadKind::Array(Box::new(ReadKind::Text)));
        encode(&arr, br#"{a,"b c",NULL,"NULL","x\"y"}"#, &mut out).unwrap();
        let mut d = ColumnDecoder::new(&ReadKind::Array(Box::new(ReadKind::Text)));
        d.append(Some(&out)).unwrap();
        assert_eq!(d.finish().len(), 1);
        let json = TextField::ArrayJson {
            quote: false,
            boolean: false,
        };
        encode(&json, b"{{1,2},{3,NULL}}", &mut out).unwrap();
        assert_eq!(out, b"[[1,2],[3,null]]");
        assert!(encode(&TextField::Binary(ReadKind::Int32), b"12x", &mut out).is_err());
        encode(&TextField::Binary(ReadKind::Bytea), b"\\x00ff", &mut out).unwrap();
        assert_eq!(out, [0, 255]);
    }
}
