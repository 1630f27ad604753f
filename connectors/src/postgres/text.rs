//! Canonical text for the binary forms whose target is text: numeric (exact, never through a
//! float), dates and times in ISO 8601 (as Postgres' own `to_json` writes them; timestamptz in
//! UTC), and uuids. Each writes into a caller's `String` so the hot path allocates nothing.

use std::fmt::Write as _;

/// Microseconds in a day.
const USECS_PER_DAY: i64 = 86_400_000_000;
/// Days from 0000-03-01 (proleptic Gregorian) to 2000-01-01, for the civil-date algorithm.
const DAYS_TO_2000: i64 = 730_425;

/// Appends the exact decimal text of a binary `numeric`; `None` when the bytes are malformed.
pub fn numeric(buf: &[u8], out: &mut String) -> Option<()> {
    let be16 = |i: usize| buf.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ndigits = be16(0)? as usize;
    let weight = be16(2)? as i16 as i64;
    let sign = be16(4)?;
    let dscale = be16(6)? as i64;
    match sign {
        0xC000 => {
            out.push_str("NaN");
            return Some(());
        }
        0xD000 => {
            out.push_str("Infinity");
            return Some(());
        }
        0xF000 => {
            out.push_str("-Infinity");
            return Some(());
        }
        0x4000 => out.push('-'),
        0x0000 => {}
        _ => return None,
    }
    if buf.len() < 8 + 2 * ndigits {
        return None;
    }
    let digit = |d: i64| -> u16 {
        if d >= 0 && (d as usize) < ndigits {
            be16(8 + 2 * d as usize).unwrap_or(0)
        } else {
            0
        }
    };
    if weight < 0 {
        out.push('0');
    } else {
        for d in 0..=weight {
            let v = digit(d);
            if d == 0 {
                let _ = write!(out, "{v}");
            } else {
                let _ = write!(out, "{v:04}");
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut written = 0;
        let mut d = weight + 1;
        while written < dscale {
            let v = digit(d);
            let group = format!("{v:04}");
            for ch in group.chars() {
                if written == dscale {
                    break;
                }
                out.push(ch);
                written += 1;
            }
            d += 1;
        }
    }
    Some(())
}

/// (year, month, day) of a day count since 2000-01-01 (proleptic Gregorian).
fn civil(days_since_2000: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil, shifted to the year 2000.
    let z = days_since_2000 + DAYS_TO_2000;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn push_date(days: i64, out: &mut String) -> bool {
    let (y, m, d) = civil(days);
    let bc = y <= 0;
    let year = if bc { 1 - y } else { y };
    let _ = write!(out, "{year:04}-{m:02}-{d:02}");
    bc
}

fn push_time_of_day(usecs: i64, out: &mut String) {
    let secs = usecs / 1_000_000;
    let frac = usecs % 1_000_000;
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if frac != 0 {
        let mut f = format!("{frac:06}");
        while f.ends_with('0') {
            f.pop();
        }
        out.push('.');
        out.push_str(&f);
    }
}

/// Appends a `date` (int32 days since 2000-01-01).
pub fn date(days: i32, out: &mut String) {
    match days {
        i32::MAX => out.push_str("infinity"),
        i32::MIN => out.push_str("-infinity"),
        d => {
            if push_date(i64::from(d), out) {
                out.push_str(" BC");
            }
        }
    }
}

/// Appends a `timestamp` or, with `utc`, a `timestamptz` (int64 µs since 2000-01-01 UTC).
pub fn timestamp(usecs: i64, utc: bool, out: &mut String) {
    match usecs {
        i64::MAX => out.push_str("infinity"),
        i64::MIN => out.push_str("-infinity"),
        t => {
            let days = t.div_euclid(USECS_PER_DAY);
            let tod = t.rem_euclid(USECS_PER_DAY);
            let bc = push_date(days, out);
            out.push('T');
            push_time_of_day(tod, out);
            if utc {
                out.push_str("+00:00");
            }
            if bc {
                out.push_str(" BC");
            }
        }
    }
}

/// Appends a `time` (int64 µs since midnight).
pub fn time(usecs: i64, out: &mut String) {
    push_time_of_day(usecs, out);
}

/// Appends a `timetz` (int64 µs, then int32 seconds *west* of UTC).
pub fn timetz(usecs: i64, zone_west: i32, out: &mut String) {
    push_time_of_day(usecs, out);
    let east = -i64::from(zone_west);
    let sign = if east < 0 { '-' } else { '+' };
    let a = east.abs();
    // As Postgres writes a time zone: minutes and seconds only where they are not zero.
    let _ = write!(out, "{sign}{:02}", a / 3600);
    if a % 3600 != 0 {
        let _ = write!(out, ":{:02}", (a / 60) % 60);
    }
    if a % 60 != 0 {
        let _ = write!(out, ":{:02}", a % 60);
    }
}

/// Appends a uuid's canonical lowercase form.
pub fn uuid(bytes: &[u8; 16], out: &mut String) {
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{b:02x}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> String {
        let mut b = Vec::new();
        for v in [ndigits, weight as u16, sign, dscale] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        let mut s = String::new();
        numeric(&b, &mut s).unwrap();
        s
    }

    #[test]
    fn numerics_are_exact() {
        assert_eq!(num(2, 0, 0, 4, &[1234, 5678]), "1234.5678");
        assert_eq!(num(1, -1, 0x4000, 5, &[5]), "-0.00050");
        assert_eq!(num(0, 0, 0, 0, &[]), "0");
        assert_eq!(num(0, 0, 0, 2, &[]), "0.00");
        assert_eq!(num(1, 2, 0, 0, &[7]), "700000000");
        assert_eq!(num(0, 0, 0xC000, 0, &[]), "NaN");
        assert_eq!(num(0, 0, 0xF000, 0, &[]), "-Infinity");
    }

    #[test]
    fn dates_and_timestamps() {
        let mut s = String::new();
        date(0, &mut s);
        assert_eq!(s, "2000-01-01");
        s.clear();
        date(-1, &mut s);
        assert_eq!(s, "1999-12-31");
        s.clear();
        date(-730_485, &mut s); // 0001-01-01 is 730,119 days before 2000; go past it into BC
        assert!(s.ends_with(" BC"), "{s}");
        s.clear();
        timestamp(USECS_PER_DAY + 1_500_000, true, &mut s);
        assert_eq!(s, "2000-01-02T00:00:01.5+00:00");
        s.clear();
        timestamp(-1, false, &mut s);
        assert_eq!(s, "1999-12-31T23:59:59.999999");
        s.clear();
        timetz(3_600_000_000, -7200, &mut s);
        assert_eq!(s, "01:00:00+02");
        s.clear();
        timetz(0, 19_800, &mut s);
        assert_eq!(s, "00:00:00-05:30");
        s.clear();
        uuid(
            &[
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11,
            ],
            &mut s,
        );
        assert_eq!(s, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    }
}
