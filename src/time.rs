//! Wall-clock formatting without a date crate: unix milliseconds to RFC 3339 UTC text, the form
//! usage rows and key records store (it sorts as text, so D1 range queries work on it).

/// `2026-11-22T00:23:48.123Z` for a unix time in milliseconds.
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar, using the
/// 400-year era arithmetic (eras of 146 097 days starting on March 1st).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
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

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_694_268_190_123), "2023-09-09T14:03:10.123Z");
        assert_eq!(rfc3339(1_795_307_028_999), "2026-11-22T00:23:48.999Z");
        assert_eq!(rfc3339(4_107_542_399_000), "2100-02-28T23:59:59.000Z");
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (inverse of `civil_from_days`).
pub fn days_from_civil(y: u64, m: u64, d: u64) -> Option<u64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).checked_sub(719_468)
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM:SS[.fff]Z` (UTC only) to unix milliseconds, so
/// instants given by admins can be normalised to the one text form the tables compare.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<u64> {
        let part = s.get(from..from + len)?;
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let month_days = [
        31,
        28 + u64::from(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)),
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d == 0 || d > *month_days.get(usize::try_from(mo - 1).ok()?)? {
        return None;
    }
    let days = days_from_civil(y, mo, d)?;
    if b.len() == 10 {
        return Some(days * 86_400_000);
    }
    if b.get(10) != Some(&b'T') || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (h, mi, se) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if h > 23 || mi > 59 || se > 59 {
        return None;
    }
    let rest = s.get(19..)?;
    let (frac, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            (r.get(..digits)?, r.get(digits..)?)
        }
        None => ("", rest),
    };
    if !(zone == "Z" || zone == "+00:00") {
        return None;
    }
    let ms = frac
        .get(..frac.len().min(3))
        .map(|f| format!("{f:0<3}"))
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0);
    Some(days * 86_400_000 + (h * 3600 + mi * 60 + se) * 1000 + ms)
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        for ms in [0, 951_782_400_000, 1_694_268_190_123, 1_795_307_028_999] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(parse_rfc3339("2026-11-01"), Some(1_793_491_200_000));
        assert_eq!(
            parse_rfc3339("2026-11-01T00:00:00Z"),
            Some(1_793_491_200_000)
        );
        assert_eq!(
            parse_rfc3339("2026-11-01T00:00:00.5+00:00"),
            Some(1_793_491_200_500)
        );
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "2026-11-01T25:00:00Z",
            "2026-11-01T00:00:00+02:00",
            "11/01/2026",
            "2026-11-01T00:00Z",
            "",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(parse_rfc3339("2024-02-29"), Some(1_709_164_800_000));
    }
}
