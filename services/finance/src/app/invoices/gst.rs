//! The rules of a GST tax invoice that do not touch the database: the financial year an
//! instant falls in (April to March, in India's time), the invoice number (CGST Rule 46(b)),
//! GSTIN validation (format and check character), the states, and the split of the GST into
//! CGST + SGST or IGST.

use chrono::{DateTime, Datelike, FixedOffset, Utc};

/// India's time: UTC+05:30 all year (no daylight saving), so a fixed offset is exact.
pub fn ist() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 1800).expect("+05:30 is a valid offset")
}

/// The financial year of `at`, as `26-27` for April 2026 to March 2027.
pub fn financial_year(at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&ist());
    let start = if local.month() >= 4 {
        local.year()
    } else {
        local.year() - 1
    };
    format!(
        "{:02}-{:02}",
        start.rem_euclid(100),
        (start + 1).rem_euclid(100)
    )
}

/// The longest invoice number Rule 46(b) allows.
pub const MAX_NUMBER_LEN: usize = 16;

/// `<prefix>/<financial year>/<six-digit sequence>`, e.g. `MM/26-27/000123`: letters, digits,
/// `-` and `/` only, at most 16 characters; `None` past that (a longer series needs a shorter
/// prefix).
pub fn invoice_number(prefix: &str, fy: &str, seq: i64) -> Option<String> {
    let n = format!("{prefix}/{fy}/{seq:06}");
    let allowed = n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/');
    (allowed && n.len() <= MAX_NUMBER_LEN && seq >= 1).then_some(n)
}

/// A credit note's number, from its own series: `C<prefix>/<financial year>/<five digits>`,
/// e.g. `CMM/26-27/00042`, within the same 16 characters.
pub fn credit_note_number(prefix: &str, fy: &str, seq: i64) -> Option<String> {
    let n = format!("C{prefix}/{fy}/{seq:05}");
    let allowed = n
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '/');
    (allowed && n.len() <= MAX_NUMBER_LEN && seq >= 1).then_some(n)
}

/// The states and union territories by their GST code.
pub const STATES: [(&str, &str); 38] = [
    ("01", "Jammu and Kashmir"),
    ("02", "Himachal Pradesh"),
    ("03", "Punjab"),
    ("04", "Chandigarh"),
    ("05", "Uttarakhand"),
    ("06", "Haryana"),
    ("07", "Delhi"),
    ("08", "Rajasthan"),
    ("09", "Uttar Pradesh"),
    ("10", "Bihar"),
    ("11", "Sikkim"),
    ("12", "Arunachal Pradesh"),
    ("13", "Nagaland"),
    ("14", "Manipur"),
    ("15", "Mizoram"),
    ("16", "Tripura"),
    ("17", "Meghalaya"),
    ("18", "Assam"),
    ("19", "West Bengal"),
    ("20", "Jharkhand"),
    ("21", "Odisha"),
    ("22", "Chhattisgarh"),
    ("23", "Madhya Pradesh"),
    ("24", "Gujarat"),
    ("26", "Dadra and Nagar Haveli and Daman and Diu"),
    ("27", "Maharashtra"),
    ("28", "Andhra Pradesh (old)"),
    ("29", "Karnataka"),
    ("30", "Goa"),
    ("31", "Lakshadweep"),
    ("32", "Kerala"),
    ("33", "Tamil Nadu"),
    ("34", "Puducherry"),
    ("35", "Andaman and Nicobar Islands"),
    ("36", "Telangana"),
    ("37", "Andhra Pradesh"),
    ("38", "Ladakh"),
    ("97", "Other Territory"),
];

pub fn state_name(code: &str) -> Option<&'static str> {
    STATES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

const GSTIN_CHARS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// The check character of a GSTIN's first 14 characters (the GSTN's mod-36 scheme).
fn gstin_check(first14: &[u8]) -> Option<u8> {
    let mut sum = 0u32;
    for (i, c) in first14.iter().enumerate() {
        let value = u32::try_from(GSTIN_CHARS.iter().position(|x| x == c)?).ok()?;
        let product = value * if i % 2 == 0 { 1 } else { 2 };
        sum += product / 36 + product % 36;
    }
    let check = (36 - sum % 36) % 36;
    GSTIN_CHARS.get(usize::try_from(check).ok()?).copied()
}

/// Why a GSTIN is not one: its shape (2-digit state, a PAN of 5 letters, 4 digits and a
/// letter, an entity number, `Z`, a check character), its state, or its check character.
pub fn gstin_error(gstin: &str) -> Option<&'static str> {
    let b = gstin.as_bytes();
    let shape = b.len() == 15
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2..7].iter().all(u8::is_ascii_uppercase)
        && b[7..11].iter().all(u8::is_ascii_digit)
        && b[11].is_ascii_uppercase()
        && (b[12].is_ascii_uppercase() || (b'1'..=b'9').contains(&b[12]))
        && b[13] == b'Z'
        && (b[14].is_ascii_uppercase() || b[14].is_ascii_digit());
    if !shape {
        return Some("is not a GSTIN (15 characters: state, PAN, entity, Z, check)");
    }
    if state_name(&gstin[..2]).is_none() {
        return Some("does not start with a state code");
    }
    if gstin_check(&b[..14]) != Some(b[14]) {
        return Some("has a wrong check character");
    }
    None
}

/// A GST amount split by the place of supply: within the supplier's state, CGST and SGST
/// halves (CGST rounded down to the paisa, SGST the rest, so they add up exactly); across
/// states, all IGST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub cgst: i64,
    pub sgst: i64,
    pub igst: i64,
}

pub fn split(gst_paise: i64, supplier_state: &str, place_of_supply: &str) -> Split {
    if supplier_state == place_of_supply {
        let cgst = gst_paise / 2;
        Split {
            cgst,
            sgst: gst_paise - cgst,
            igst: 0,
        }
    } else {
        Split {
            cgst: 0,
            sgst: 0,
            igst: gst_paise,
        }
    }
}

/// Paise as rupees with two decimals: `4228800` -> `42288.00`.
pub fn rupees(paise: i64) -> String {
    let sign = if paise < 0 { "-" } else { "" };
    let p = paise.unsigned_abs();
    format!("{sign}{}.{:02}", p / 100, p % 100)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_financial_year_turns_at_midnight_on_1_april_in_india() {
        // 31 March 23:59 IST is 18:29 UTC; 1 April 00:00 IST is 31 March 18:30 UTC.
        let last = Utc.with_ymd_and_hms(2027, 3, 31, 18, 29, 59).unwrap();
        let first = Utc.with_ymd_and_hms(2027, 3, 31, 18, 30, 0).unwrap();
        assert_eq!(financial_year(last), "26-27");
        assert_eq!(financial_year(first), "27-28");
        assert_eq!(
            financial_year(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()),
            "26-27"
        );
        assert_eq!(
            financial_year(Utc.with_ymd_and_hms(2099, 6, 1, 0, 0, 0).unwrap()),
            "99-00"
        );
    }

    #[test]
    fn invoice_numbers_follow_rule_46b() {
        assert_eq!(
            invoice_number("MM", "26-27", 123).as_deref(),
            Some("MM/26-27/000123")
        );
        assert_eq!(invoice_number("MMX", "26-27", 999_999).unwrap().len(), 16);
        // Too long, a character the rule does not allow, no sequence.
        assert_eq!(invoice_number("MMX", "26-27", 1_000_000), None);
        assert_eq!(invoice_number("M_M", "26-27", 1), None);
        assert_eq!(invoice_number("MM", "26-27", 0), None);
        assert_eq!(
            credit_note_number("MM", "26-27", 42).as_deref(),
            Some("CMM/26-27/00042")
        );
        assert_eq!(
            credit_note_number("MMX", "26-27", 99_999).unwrap().len(),
            16
        );
        assert_eq!(credit_note_number("MMX", "26-27", 100_000), None);
    }

    #[test]
    fn a_gstin_is_checked_by_shape_state_and_check_character() {
        assert_eq!(gstin_error("27AAPFU0939F1ZV"), None);
        assert_eq!(gstin_error("29AAGCB7383J1Z4"), None);
        // One character changed breaks the check character.
        assert!(gstin_error("27AAPFU0939F1ZW").unwrap().contains("check"));
        assert!(gstin_error("27AAPFU0938F1ZV").unwrap().contains("check"));
        assert!(gstin_error("99AAPFU0939F1ZV").unwrap().contains("state"));
        assert!(gstin_error("27aapfu0939f1zv").is_some());
        assert!(gstin_error("27AAPFU0939F1Z").is_some());
        assert!(gstin_error("").is_some());
    }

    #[test]
    fn gst_splits_in_halves_within_a_state_and_whole_across() {
        assert_eq!(
            split(7_612, "29", "29"),
            Split {
                cgst: 3_806,
                sgst: 3_806,
                igst: 0
            }
        );
        // An odd paisa goes to SGST.
        assert_eq!(
            split(7_613, "29", "29"),
            Split {
                cgst: 3_806,
                sgst: 3_807,
                igst: 0
            }
        );
        assert_eq!(
            split(7_613, "29", "27"),
            Split {
                cgst: 0,
                sgst: 0,
                igst: 7_613
            }
        );
        assert_eq!(rupees(4_228_800), "42288.00");
        assert_eq!(rupees(5), "0.05");
    }
}
