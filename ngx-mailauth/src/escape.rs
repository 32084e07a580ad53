//! What a user name may be before it reaches any lookup, and how it is escaped for LDAP.
//!
//! A login name is checked against a conservative alphabet first ([`check_login_name`]); the
//! LDAP escapers below are applied anyway, so that a later widening of the alphabet can never
//! turn into a filter or DN injection.

/// Whether `name` uses only `[A-Za-z0-9._@+-]` (and is not empty). Names outside this alphabet
/// are refused before the cache, the directory or the roles database see them.
pub fn check_login_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'-'))
}

/// Escapes a value for an RFC 4515 search filter (section 3): `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`; every other non-ASCII-printable byte is hex-escaped too.
pub fn ldap_filter_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'*' | b'(' | b')' | b'\\' | 0 => out.push_str(&format!("\\{b:02x}")),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\{b:02x}")),
        }
    }
    out
}

/// Escapes a value for an RFC 4514 distinguished name attribute value (section 2.4): `"`, `+`,
/// `,`, `;`, `<`, `>`, `\` and `=` get a backslash; a leading `#` or space and a trailing space
/// get one too; NUL and other control or non-ASCII bytes become `\XX`.
pub fn ldap_dn_value(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(value.len());
    for (i, &b) in bytes.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == bytes.len();
        match b {
            b'"' | b'+' | b',' | b';' | b'<' | b'>' | b'\\' | b'=' => {
                out.push('\\');
                out.push(b as char);
            }
            b'#' if first => out.push_str("\\#"),
            b' ' if first || last => out.push_str("\\ "),
            0x21..=0x7e | b' ' => out.push(b as char),
            _ => out.push_str(&format!("\\{b:02x}")),
        }
    }
    out
}

/// Fills a template's `%u` with `value` (already escaped for its context); `%%` is a literal `%`.
pub fn fill_template(template: &str, value: &str) -> String {
    let mut out = String::with_capacity(template.len() + value.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => out.push_str(value),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Whether a template contains the `%u` placeholder (checked at `nginx -t`).
pub fn has_user_placeholder(template: &str) -> bool {
    fill_template(template, "\u{1}") != fill_template(template, "\u{2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_name_alphabet() {
        for ok in ["demo1", "a.b-c_d+e@example.org", "X9"] {
            assert!(check_login_name(ok), "{ok}");
        }
        for bad in ["", "*)(uid=*", "a b", "a\r\nb", "a\0", "é", "a,b", "a=b", "a\\", "(x)"] {
            assert!(!check_login_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn filter_escaping_of_an_injection_attempt() {
        assert_eq!(ldap_filter_value("*)(uid=*"), "\\2a\\29\\28uid=\\2a");
        assert_eq!(ldap_filter_value("a\\b\0"), "a\\5cb\\00");
        assert_eq!(ldap_filter_value("é"), "\\c3\\a9");
        assert_eq!(ldap_filter_value("plain.user@x"), "plain.user@x");
        let filter = fill_template("(&(objectClass=person)(uid=%u))", &ldap_filter_value("*)(uid=*"));
        assert_eq!(filter, "(&(objectClass=person)(uid=\\2a\\29\\28uid=\\2a))");
    }

    #[test]
    fn dn_escaping() {
        assert_eq!(ldap_dn_value("*)(uid=*"), "*)(uid\\=*");
        assert_eq!(ldap_dn_value("a,ou=admins"), "a\\,ou\\=admins");
        assert_eq!(ldap_dn_value("#x "), "\\#x\\ ");
        assert_eq!(ldap_dn_value(" a"), "\\ a");
        assert_eq!(ldap_dn_value("a\"+;<>\\b"), "a\\\"\\+\\;\\<\\>\\\\b");
        assert_eq!(ldap_dn_value("a\r\n\0"), "a\\0d\\0a\\00");
        assert_eq!(
            fill_template("uid=%u,ou=people,dc=example,dc=org", &ldap_dn_value("x,dc=evil")),
            "uid=x\\,dc\\=evil,ou=people,dc=example,dc=org"
        );
    }

    #[test]
    fn templates() {
        assert_eq!(fill_template("%u-%%u-%x-%", "v"), "v-%u-%x-%");
        assert!(has_user_placeholder("uid=%u,dc=x"));
        assert!(!has_user_placeholder("uid=%%u,dc=x"));
        assert!(!has_user_placeholder("uid=x"));
    }
}
