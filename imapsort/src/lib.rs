//! IMAP SORT and THREAD (RFC 5256), with the DISPLAYFROM / DISPLAYTO sort
//! keys of RFC 5957: pure algorithms over per-message data, no I/O.
//!
//! - [`base_subject`] / [`analyze_subject`]: the base subject of RFC 5256
//!   section 2.1 and its "reply or forward" test.
//! - [`SortItem`]: what SORT and THREAD need per message;
//!   [`SortItem::from_header`] fills it from a header block.
//! - [`parse_sort_keys`] and [`sort`]: the SORT command (section 3);
//!   [`DerivedKeys`] and [`sort_derived`] the same with the text keys
//!   derived once and kept by an index.
//! - [`thread_orderedsubject`], [`thread_references`] (section 3) produce
//!   [`Thread`] trees; [`format_threads`] writes the THREAD response
//!   (section 4).
//!
//! Strings compare under `i;ascii-casemap` (RFC 4790), the collation RFC
//! 5256 names; `i;unicode-casemap` (I18NLEVEL=2, RFC 5255) is not
//! implemented. Every result is in terms of [`SortItem::id`], so the same
//! code serves SORT and UID SORT, THREAD and UID THREAD; ties go to
//! ascending `id`, i.e. mailbox order.
//!
//! ```
//! use mailscale_imapsort::{format_threads, parse_sort_keys, sort, thread_references, SortItem};
//! let items = [
//!     SortItem::from_header(1, 100, 500, b"Subject: Plans\r\nMessage-ID: <1@x>\r\nFrom: Zoe <zoe@x>\r\n\r\n"),
//!     SortItem::from_header(2, 200, 300, b"Subject: Re: plans\r\nMessage-ID: <2@x>\r\nIn-Reply-To: <1@x>\r\nFrom: al@x\r\n\r\n"),
//!     SortItem::from_header(3, 300, 900, b"Subject: Lunch\r\nMessage-ID: <3@x>\r\nFrom: bo@x\r\n\r\n"),
//! ];
//! assert_eq!(sort(&items, &parse_sort_keys(&["SUBJECT", "REVERSE", "ARRIVAL"]).unwrap()), [3, 2, 1]);
//! assert_eq!(sort(&items, &parse_sort_keys(&["FROM"]).unwrap()), [2, 3, 1]);
//! assert_eq!(format_threads(&thread_references(&items)), "(1 2)(3)");
//! ```

#![forbid(unsafe_code)]

mod item;
mod sort;
mod subject;
mod thread;
mod tree;

pub use item::{parse_date, SortItem};
pub use sort::{parse_sort_keys, sort, sort_derived, DerivedKeys, SortField, SortKey, SortKeyError};
pub use subject::{analyze_subject, base_subject, BaseSubject};
pub use thread::{thread_orderedsubject, thread_references, ThreadAlgorithm};
pub use tree::{format_threads, Thread};
