//! Small text writers (events, reports, JA3 strings): numbers
//! in decimal, addresses, RFC 3339 timestamps, each appended to a byte
//! buffer without `core::fmt` on the common path, and each writing exactly
//! what the standard library's `Display` or humantime writes (tests compare
//! them on any input).

use std::fmt::Write as _;
use std::net::IpAddr;

/// `v` in decimal.
pub fn decimal(out: &mut Vec<u8>, v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    if v < 100_000 {
        // Ports, counts, most numbers here: five digits at most, made by
        // multiplications, one reserve and no copy call.
        let v = v as u32;
        let d = [
            v / 10_000,
            v / 1_000 % 10,
            v / 100 % 10,
            v / 10 % 10,
            v % 10,
        ];
        let skip = match v {
            0..=99 => 3,
            100..=999 => 2,
            1_000..=9_999 => 1,
            _ => 0,
        };
        out.reserve(5);
        for &x in &d[skip..] {
            out.push(b'0' + x as u8);
        }
        return;
    }
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// An address as `Display` writes it (IPv4 by hand, IPv6 through `fmt`).
pub fn ip_text(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Each octet from a table of their texts: three bytes copied
            // (its digits, then padding that the dot and the next octet
            // overwrite), the length advanced by the digits and the dot.
            let mut text = [0u8; 16];
            let mut n = 0;
            for o in v4.octets() {
                let (len, digits) = OCTETS[usize::from(o)];
                text[n..n + 3].copy_from_slice(&digits);
                text[n + len] = b'.';
                n += len + 1;
            }
            out.extend_from_slice(&text[..n - 1]);
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(39);
            let _ = write!(s, "{v6}");
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// The decimal text of each octet value: its length and its digits (padded).
const OCTETS: [(usize, [u8; 3]); 256] = {
    let mut t = [(0, [0u8; 3]); 256];
    let mut v = 0;
    while v < 256 {
        let (h, d, u) = ((v / 100) as u8, (v / 10 % 10) as u8, (v % 10) as u8);
        t[v] = if v >= 100 {
            (3, [b'0' + h, b'0' + d, b'0' + u])
        } else if v >= 10 {
            (2, [b'0' + d, b'0' + u, 0])
        } else {
            (1, [b'0' + u, 0, 0])
        };
        v += 1;
    }
    t
};

/// The wall clock, in nanoseconds since the Unix epoch (0 before it).
pub fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Nanoseconds since the Unix epoch as RFC 3339 UTC with microseconds,
/// `2026-02-03T04:05:06.123456Z` (what `humantime::format_rfc3339_micros`
/// writes).
pub fn rfc3339_micros(out: &mut Vec<u8>, ns: u64) {
    rfc3339(out, ns, true);
}

/// As [`rfc3339_micros`], to the second: `2026-02-03T04:05:06Z` (what
/// `humantime::format_rfc3339_seconds` writes).
pub fn rfc3339_seconds(out: &mut Vec<u8>, ns: u64) {
    rfc3339(out, ns, false);
}

fn rfc3339(out: &mut Vec<u8>, ns: u64, micros_too: bool) {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1_000;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(secs / 86_400);
    let two = |v: u64| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
    let (y1, y2, mo, dd) = (two(y / 100), two(y % 100), two(m), two(d));
    let (h, mi, s) = (two(rem / 3600), two(rem / 60 % 60), two(rem % 60));
    let (u1, u2, u3) = (
        two(micros / 10_000),
        two(micros / 100 % 100),
        two(micros % 100),
    );
    // ns below 2^64 keeps the year below 2555: always four digits.
    let all = [
        y1[0], y1[1], y2[0], y2[1], b'-', mo[0], mo[1], b'-', dd[0], dd[1], b'T', h[0], h[1], b':',
        mi[0], mi[1], b':', s[0], s[1], b'.', u1[0], u1[1], u2[0], u2[1], u3[0], u3[1], b'Z',
    ];
    if micros_too {
        out.extend_from_slice(&all);
    } else {
        out.extend_from_slice(&all[..19]);
        out.push(b'Z');
    }
}

/// Year, month and day of `days` after 1970-01-01 (proleptic Gregorian;
/// Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_timestamps_as_humantime() {
        for ns in [
            0,
            1,
            999_999_999,
            1_798_761_600_004_111_000,
            951_782_400_000_000_000, // 2000-02-29
            4_102_444_799_999_999_999,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            rfc3339_micros(&mut out, ns);
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_micros(t).to_string()
            );
            let mut out = Vec::new();
            rfc3339_seconds(&mut out, ns);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_seconds(t).to_string()
            );
        }
    }

    proptest! {
        #[test]
        fn text_any_time_as_humantime(ns in any::<u64>()) {
            let mut out = Vec::new();
            rfc3339_micros(&mut out, ns);
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_micros(t).to_string()
            );
            let mut out = Vec::new();
            rfc3339_seconds(&mut out, ns);
            prop_assert_eq!(
                String::from_utf8(out).unwrap(),
                humantime::format_rfc3339_seconds(t).to_string()
            );
        }

        #[test]
        fn text_any_address_and_number_as_display(a in any::<[u8; 16]>(), v4 in any::<u32>(), n in any::<u64>()) {
            for ip in [IpAddr::from(a), IpAddr::from(v4.to_be_bytes())] {
                let mut out = Vec::new();
                ip_text(&mut out, ip);
                prop_assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
            }
            let mut out = Vec::new();
            decimal(&mut out, n);
            prop_assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }
}
