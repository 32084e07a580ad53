//! SORT (RFC 5256 section 3) with the DISPLAYFROM and DISPLAYTO keys of
//! RFC 5957.

use std::cmp::Ordering;
use std::fmt;

use crate::item::SortItem;
use crate::subject::{base_subject, casemap};

/// A sort key (`sort-key`, RFC 5256 section 5; RFC 5957 section 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    /// INTERNALDATE.
    Arrival,
    /// `addr-mailbox` of the first Cc address.
    Cc,
    /// Sent date (section 2.2).
    Date,
    /// `addr-mailbox` of the first From address.
    From,
    /// RFC822.SIZE.
    Size,
    /// Base subject (section 2.1).
    Subject,
    /// `addr-mailbox` of the first To address.
    To,
    /// RFC 5957: display name of the first From address, else its addr-spec.
    DisplayFrom,
    /// RFC 5957: display name of the first To address, else its addr-spec.
    DisplayTo,
}

impl SortField {
    /// The key's name as it appears in a SORT command.
    pub fn name(self) -> &'static str {
        match self {
            SortField::Arrival => "ARRIVAL",
            SortField::Cc => "CC",
            SortField::Date => "DATE",
            SortField::From => "FROM",
            SortField::Size => "SIZE",
            SortField::Subject => "SUBJECT",
            SortField::To => "TO",
            SortField::DisplayFrom => "DISPLAYFROM",
            SortField::DisplayTo => "DISPLAYTO",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        const ALL: [SortField; 9] = [
            SortField::Arrival,
            SortField::Cc,
            SortField::Date,
            SortField::From,
            SortField::Size,
            SortField::Subject,
            SortField::To,
            SortField::DisplayFrom,
            SortField::DisplayTo,
        ];
        ALL.into_iter().find(|f| f.name().eq_ignore_ascii_case(name))
    }
}

/// One `sort-criterion`: `["REVERSE" SP] sort-key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SortKey {
    /// What to compare.
    pub field: SortField,
    /// REVERSE: this key sorts in descending order.
    pub reverse: bool,
}

impl SortKey {
    /// An ascending key.
    pub fn new(field: SortField) -> Self {
        SortKey { field, reverse: false }
    }

    /// A REVERSE key.
    pub fn reversed(field: SortField) -> Self {
        SortKey { field, reverse: true }
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reverse {
            f.write_str("REVERSE ")?;
        }
        f.write_str(self.field.name())
    }
}

/// Why a sort criteria list was rejected; the IMAP server answers BAD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SortKeyError {
    /// `sort-criteria` needs at least one criterion.
    #[error("expected at least one sort criterion, got an empty list")]
    Empty,
    /// Not a sort key this implementation knows.
    #[error("expected a sort key (ARRIVAL, CC, DATE, FROM, SIZE, SUBJECT, TO, DISPLAYFROM, DISPLAYTO), got {0:?}")]
    UnknownKey(String),
    /// REVERSE at the end of the list or followed by another REVERSE.
    #[error("expected a sort key after REVERSE, got {0}")]
    ReverseWithoutKey(String),
}

/// Parses the atoms of a `sort-criteria` list (RFC 5256 section 5,
/// extended by RFC 5957), case-insensitively.
///
/// ```
/// use mailscale_imapsort::{parse_sort_keys, SortField, SortKey};
/// assert_eq!(
///     parse_sort_keys(&["REVERSE", "date", "SUBJECT"]).unwrap(),
///     [SortKey::reversed(SortField::Date), SortKey::new(SortField::Subject)]
/// );
/// assert!(parse_sort_keys(&["REVERSE"]).is_err());
/// ```
///
/// # Errors
///
/// [`SortKeyError`] for an empty list, an unknown key, or a REVERSE that is
/// not followed by a key.
pub fn parse_sort_keys<S: AsRef<str>>(criteria: &[S]) -> Result<Vec<SortKey>, SortKeyError> {
    if criteria.is_empty() {
        return Err(SortKeyError::Empty);
    }
    let mut keys = Vec::with_capacity(criteria.len());
    let mut atoms = criteria.iter().map(AsRef::as_ref);
    while let Some(atom) = atoms.next() {
        let (reverse, name) = if atom.eq_ignore_ascii_case("REVERSE") {
            match atoms.next() {
                Some(next) if !next.eq_ignore_ascii_case("REVERSE") => (true, next),
                Some(next) => return Err(SortKeyError::ReverseWithoutKey(format!("{next:?}"))),
                None => return Err(SortKeyError::ReverseWithoutKey("the end of the list".to_owned())),
            }
        } else {
            (false, atom)
        };
        let field = SortField::from_name(name).ok_or_else(|| SortKeyError::UnknownKey(name.to_owned()))?;
        keys.push(SortKey { field, reverse });
    }
    Ok(keys)
}

/// Sorts `items` by `keys` and returns their ids in order (the payload of
/// `* SORT`).
///
/// Strings compare under `i;ascii-casemap`; dates as UTC instants; each
/// REVERSE applies to its key only; messages equal under every key keep
/// mailbox order (ascending `id`, RFC 5256 section 3). With no keys the
/// result is mailbox order. Keys are computed once per item, so the cost is
/// O(n log n) comparisons of precomputed values.
///
/// ```
/// use mailscale_imapsort::{sort, SortField, SortItem, SortKey};
/// let items = [SortItem::new(1, 300, 10), SortItem::new(2, 100, 30), SortItem::new(3, 200, 10)];
/// assert_eq!(sort(&items, &[SortKey::new(SortField::Arrival)]), [2, 3, 1]);
/// assert_eq!(sort(&items, &[SortKey::reversed(SortField::Size)]), [2, 1, 3]);
/// ```
pub fn sort(items: &[SortItem], keys: &[SortKey]) -> Vec<u32> {
    let columns: Vec<Column<'_>> = keys.iter().map(|k| Column::build(items, k.field)).collect();
    ordered(items, keys, &columns)
}

/// The text keys of one message, derived from its header fields once so that an index can
/// store them and later SORTs compare them directly (see [`sort_derived`]).
///
/// Every field is what [`sort`] would compute for that key: the casemapped base subject
/// (RFC 5256 section 2.1), the casemapped `addr-mailbox` of the first From / To / Cc address,
/// and the casemapped RFC 5957 display keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DerivedKeys {
    /// SUBJECT.
    pub subject: String,
    /// FROM.
    pub from: String,
    /// TO.
    pub to: String,
    /// CC.
    pub cc: String,
    /// DISPLAYFROM.
    pub display_from: String,
    /// DISPLAYTO.
    pub display_to: String,
}

impl DerivedKeys {
    /// The version of the derivation. An index that stores [`DerivedKeys`] keeps this number
    /// with them and derives them again when it differs: it changes whenever a change of this
    /// crate would give a different key for the same header fields.
    pub const VERSION: u32 = 1;

    /// The keys of `item`.
    pub fn of(item: &SortItem) -> Self {
        DerivedKeys {
            subject: casemap(&base_subject(item.subject.as_deref().unwrap_or(""))),
            from: addr_mailbox(item.from.as_deref()),
            to: addr_mailbox(item.to.as_deref()),
            cc: addr_mailbox(item.cc.as_deref()),
            display_from: display(item.from.as_deref()),
            display_to: display(item.to.as_deref()),
        }
    }

    /// The key of a text field; the numeric fields are not kept here.
    fn text(&self, field: SortField) -> &str {
        match field {
            SortField::Subject => &self.subject,
            SortField::From => &self.from,
            SortField::To => &self.to,
            SortField::Cc => &self.cc,
            SortField::DisplayFrom => &self.display_from,
            SortField::DisplayTo => &self.display_to,
            SortField::Arrival | SortField::Date | SortField::Size => "",
        }
    }
}

/// [`sort`] with the text keys already derived (an index keeps them):
/// `derived[i]` holds, for each text field of `keys`, what
/// `DerivedKeys::of` gives for the message of `items[i]`; its other fields
/// and the raw header fields of `items` are not read. The result is that of
/// `sort(items, keys)` on the full items, without parsing a subject or an
/// address.
///
/// ```
/// use mailscale_imapsort::{sort, sort_derived, DerivedKeys, SortField, SortItem, SortKey};
/// let items = [
///     SortItem::from_header(1, 0, 0, b"Subject: Re: b\r\nFrom: Zed <z@x>\r\n\r\n"),
///     SortItem::from_header(2, 0, 0, b"Subject: a\r\nFrom: al@x\r\n\r\n"),
/// ];
/// let derived: Vec<DerivedKeys> = items.iter().map(DerivedKeys::of).collect();
/// let keys = [SortKey::new(SortField::Subject)];
/// assert_eq!(sort_derived(&items, &derived, &keys), [2, 1]);
/// assert_eq!(sort_derived(&items, &derived, &keys), sort(&items, &keys));
/// ```
///
/// # Panics
///
/// When `derived` and `items` differ in length.
pub fn sort_derived(items: &[SortItem], derived: &[DerivedKeys], keys: &[SortKey]) -> Vec<u32> {
    assert_eq!(items.len(), derived.len(), "one DerivedKeys per SortItem");
    let columns: Vec<Column<'_>> = keys
        .iter()
        .map(|k| match k.field {
            SortField::Arrival | SortField::Date | SortField::Size => Column::build(items, k.field),
            text => Column::Borrowed(derived.iter().map(|d| d.text(text)).collect()),
        })
        .collect();
    ordered(items, keys, &columns)
}

fn ordered(items: &[SortItem], keys: &[SortKey], columns: &[Column<'_>]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        for (key, column) in keys.iter().zip(columns) {
            let ord = column.compare(a, b);
            let ord = if key.reverse { ord.reverse() } else { ord };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        items[a].id.cmp(&items[b].id)
    });
    order.into_iter().map(|i| items[i].id).collect()
}

/// One key's values for every item, computed up front (or borrowed from [`DerivedKeys`]).
enum Column<'a> {
    Number(Vec<i64>),
    Text(Vec<String>),
    Borrowed(Vec<&'a str>),
}

impl Column<'_> {
    fn build(items: &[SortItem], field: SortField) -> Column<'static> {
        let text = |f: &dyn Fn(&SortItem) -> String| Column::Text(items.iter().map(f).collect());
        match field {
            SortField::Arrival => Column::Number(items.iter().map(|i| i.arrival).collect()),
            SortField::Date => Column::Number(items.iter().map(SortItem::sent_date).collect()),
            SortField::Size => {
                Column::Number(items.iter().map(|i| i64::try_from(i.size).unwrap_or(i64::MAX)).collect())
            }
            SortField::Subject => text(&|i| casemap(&base_subject(i.subject.as_deref().unwrap_or("")))),
            SortField::From => text(&|i| addr_mailbox(i.from.as_deref())),
            SortField::To => text(&|i| addr_mailbox(i.to.as_deref())),
            SortField::Cc => text(&|i| addr_mailbox(i.cc.as_deref())),
            SortField::DisplayFrom => text(&|i| display(i.from.as_deref())),
            SortField::DisplayTo => text(&|i| display(i.to.as_deref())),
        }
    }

    fn compare(&self, a: usize, b: usize) -> Ordering {
        match self {
            Column::Number(v) => v[a].cmp(&v[b]),
            Column::Text(v) => v[a].as_bytes().cmp(v[b].as_bytes()),
            Column::Borrowed(v) => v[a].as_bytes().cmp(v[b].as_bytes()),
        }
    }
}

/// Markers the mime crate puts in place of a missing local part / domain.
const MISSING_MAILBOX: &str = "MISSING_MAILBOX";
const MISSING_DOMAIN: &str = "MISSING_DOMAIN";

/// The first mailbox of an address-list value, parsed by the mime crate
/// (groups are entered, their markers skipped).
fn first_mailbox(value: Option<&str>) -> Option<mailscale_mime::Mailbox> {
    let value = value?;
    if value.trim().is_empty() {
        return None;
    }
    let mut field = Vec::with_capacity(value.len() + 8);
    field.extend_from_slice(b"A: ");
    field.extend(value.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    field.extend_from_slice(b"\r\n\r\n");
    mailscale_mime::mailboxes(&field, "A").into_iter().next()
}

/// FROM / TO / CC key: the `addr-mailbox` of the first address, casemapped;
/// empty when there is none.
fn addr_mailbox(value: Option<&str>) -> String {
    match first_mailbox(value) {
        Some(m) if m.mailbox != MISSING_MAILBOX => casemap(&m.mailbox),
        _ => String::new(),
    }
}

/// DISPLAYFROM / DISPLAYTO key (RFC 5957 section 3): the decoded display
/// name of the first address if it is non-empty, else its addr-spec
/// (`mailbox@host`); empty when there is no address. Casemapped.
fn display(value: Option<&str>) -> String {
    let Some(m) = first_mailbox(value) else {
        return String::new();
    };
    if let Some(name) = m.name.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        return casemap(name);
    }
    let mailbox = if m.mailbox == MISSING_MAILBOX { "" } else { m.mailbox.as_str() };
    let spec = if m.host == MISSING_DOMAIN { mailbox.to_owned() } else { format!("{mailbox}@{}", m.host) };
    casemap(&spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_keys() {
        use SortField::*;
        let k = parse_sort_keys(&["arrival", "Cc", "REVERSE", "DATE", "FROM", "SIZE", "SUBJECT", "TO"]).unwrap();
        assert_eq!(k.iter().map(|k| k.field).collect::<Vec<_>>(), [Arrival, Cc, Date, From, Size, Subject, To]);
        assert_eq!(k.iter().filter(|k| k.reverse).count(), 1);
        assert!(k[2].reverse);
        let k = parse_sort_keys(&["displayfrom".to_owned(), "REVERSE".into(), "DisplayTo".into()]).unwrap();
        assert_eq!(k, [SortKey::new(DisplayFrom), SortKey::reversed(DisplayTo)]);
        assert_eq!(k[1].to_string(), "REVERSE DISPLAYTO");
    }

    #[test]
    fn parse_key_errors() {
        assert_eq!(parse_sort_keys::<&str>(&[]), Err(SortKeyError::Empty));
        assert_eq!(parse_sort_keys(&["DATE", "NAME"]), Err(SortKeyError::UnknownKey("NAME".into())));
        assert_eq!(
            parse_sort_keys(&["REVERSE", "REVERSE", "DATE"]),
            Err(SortKeyError::ReverseWithoutKey("\"REVERSE\"".into()))
        );
        let err = parse_sort_keys(&["DATE", "REVERSE"]).unwrap_err();
        assert_eq!(err.to_string(), "expected a sort key after REVERSE, got the end of the list");
        assert!(parse_sort_keys(&[""]).is_err());
    }

    #[test]
    fn derived_keys_sort_like_the_raw_fields() {
        let headers: [&[u8]; 6] = [
            b"Subject: Re: [list] Plans (fwd)\r\nFrom: \"Zed\" <Zed@X>\r\nTo: a@x, b@x\r\nCc: C <c@x>\r\n\r\n",
            b"Subject: plans\r\nFrom: =?utf-8?q?J=C3=B6rg?= <j@x>\r\nTo: team: Bo <bo@x>;\r\n\r\n",
            b"Subject: =?utf-8?q?Fwd:_=C3=A9t=C3=A9?=\r\nFrom: al@x\r\nCc: <>\r\n\r\n",
            b"From: undisclosed-recipients:;\r\nTo: Al <AL@x>\r\n\r\n",
            b"Subject: Lunch\r\nFrom: bo@x\r\nTo: \"\" <Bob@Example.ORG>\r\n\r\n",
            b"\r\n",
        ];
        let items: Vec<SortItem> =
            headers.iter().enumerate().map(|(n, h)| SortItem::from_header(n as u32 + 1, 0, 0, h)).collect();
        let derived: Vec<DerivedKeys> = items.iter().map(DerivedKeys::of).collect();
        assert_eq!(derived[0].subject, "plans");
        assert_eq!(derived[0].from, "zed");
        assert_eq!(derived[1].display_from, "j\u{f6}rg");
        use SortField::*;
        for field in [Arrival, Cc, Date, From, Size, Subject, To, DisplayFrom, DisplayTo] {
            for keys in [vec![SortKey::new(field)], vec![SortKey::reversed(field), SortKey::new(Subject)]] {
                assert_eq!(sort_derived(&items, &derived, &keys), sort(&items, &keys), "{keys:?}");
            }
        }
    }

    #[test]
    fn address_keys() {
        assert_eq!(addr_mailbox(Some("\"Zed\" <Alice@Example.org>, bob@x")), "alice");
        assert_eq!(addr_mailbox(Some("undisclosed-recipients:;")), "");
        assert_eq!(addr_mailbox(Some("team: Carol <carol@x>;")), "carol");
        assert_eq!(addr_mailbox(Some("<>")), "");
        assert_eq!(addr_mailbox(Some("")), "");
        assert_eq!(addr_mailbox(None), "");
        assert_eq!(display(Some("=?utf-8?q?J=C3=B6rg?= <j@x>")), "j\u{f6}rg");
        assert_eq!(display(Some("\"\" <Bob@Example.ORG>")), "bob@example.org");
        assert_eq!(display(Some("bob")), "bob");
        assert_eq!(display(Some("Zed (comment) <a@b>")), "zed");
        assert_eq!(display(None), "");
    }
}
