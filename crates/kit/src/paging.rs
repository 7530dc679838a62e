//! Pagination of every List RPC: a page size (0 means the default 50, at most 200) and an opaque
//! page token, base64url of a versioned cursor (`v1:<offset>`), so the cursor can change shape
//! without old tokens being misread. A bad size or a token this API did not issue is the same
//! `InvalidArgument` everywhere.
//!
//! ```
//! use mas_kit::paging::Page;
//!
//! let page = Page::parse(0, "").unwrap();
//! assert_eq!((page.size, page.offset), (50, 0));
//! // Ask the database for one row more than the page to know whether another page follows.
//! let rows: Vec<u32> = (0..51).collect();
//! let (rows, next) = page.split(rows);
//! assert_eq!(rows.len(), 50);
//! assert_eq!(Page::parse(0, &next).unwrap().offset, 50);
//! ```

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::{AppError, AppResult};

/// Rows a page holds when the request leaves `page_size` at 0.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// The largest `page_size` a request may ask for.
pub const MAX_PAGE_SIZE: u64 = 200;

const CURSOR_V1: &str = "v1:";

/// One page of a list: how many rows, and from which offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub size: u64,
    pub offset: u64,
}

impl Page {
    /// The page a request asks for, from its `page_size` and `page_token` fields.
    pub fn parse(page_size: i32, page_token: &str) -> AppResult<Page> {
        let size = match u64::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) if n <= MAX_PAGE_SIZE => n,
            _ => {
                return Err(AppError::invalid(
                    "pageSize",
                    format!("must be between 1 and {MAX_PAGE_SIZE}"),
                ));
            }
        };
        Ok(Page {
            size,
            offset: decode(page_token)?,
        })
    }

    /// Rows to fetch: one more than the page, so [`Page::split`] knows whether more follow.
    pub fn limit(&self) -> u64 {
        self.size + 1
    }

    /// The page's rows (fetched with [`Page::limit`]) and the token of the next page, empty on
    /// the last one.
    pub fn split<T>(&self, mut rows: Vec<T>) -> (Vec<T>, String) {
        if rows.len() as u64 > self.size {
            rows.truncate(self.size as usize);
            (rows, encode(self.offset + self.size))
        } else {
            (rows, String::new())
        }
    }
}

fn encode(offset: u64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_V1}{offset}"))
}

fn decode(token: &str) -> AppResult<u64> {
    if token.is_empty() {
        return Ok(0);
    }
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(CURSOR_V1)?.parse().ok())
        .ok_or_else(|| AppError::invalid("pageToken", "is not a token this API issued"))
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};

    use super::*;

    fn refusal(size: i32, token: &str) -> (Code, String) {
        let s = Status::from(Page::parse(size, token).unwrap_err());
        (s.code(), s.message().to_owned())
    }

    #[test]
    fn sizes_default_to_50_and_stop_at_200() {
        assert_eq!(Page::parse(0, "").unwrap().size, 50);
        assert_eq!(Page::parse(1, "").unwrap().size, 1);
        assert_eq!(Page::parse(200, "").unwrap().size, 200);
        let out_of_range = (
            Code::InvalidArgument,
            "pageSize: must be between 1 and 200".to_owned(),
        );
        for bad in [201, -1, i32::MIN, i32::MAX] {
            assert_eq!(refusal(bad, ""), out_of_range, "{bad}");
        }
    }

    #[test]
    fn tokens_round_trip_and_the_last_page_has_none() {
        let first = Page::parse(2, "").unwrap();
        let (rows, next) = first.split(vec![1, 2, 3]);
        assert_eq!(rows, [1, 2]);
        let second = Page::parse(2, &next).unwrap();
        assert_eq!(second, Page { size: 2, offset: 2 });
        let (rows, next) = second.split(vec![3]);
        assert_eq!((rows, next), (vec![3], String::new()));
        assert_eq!(first.limit(), 3);
    }

    #[test]
    fn malformed_and_foreign_tokens_are_one_invalid_argument() {
        let bad = (
            Code::InvalidArgument,
            "pageToken: is not a token this API issued".to_owned(),
        );
        let forged = [
            "garbage!".to_owned(),
            "50".to_owned(),                 // an old bare offset
            URL_SAFE_NO_PAD.encode("o:50"),  // another cursor's shape
            URL_SAFE_NO_PAD.encode("v2:50"), // a version this build does not know
            URL_SAFE_NO_PAD.encode("v1:-5"), // a negative offset
            URL_SAFE_NO_PAD.encode("v1:"),   // no offset
            URL_SAFE_NO_PAD.encode("v1:99999999999999999999999"), // past u64
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]), // not UTF-8
        ];
        for token in forged {
            assert_eq!(refusal(10, &token), bad, "{token}");
        }
    }
}
