//! Values of the `mailauth_*` directives, parsed and checked without nginx. The directive
//! setters in `module` pass the arguments here and print the error, prefixed with the
//! directive's name, at `nginx -t`.

use std::path::Path;
use std::time::Duration;

use crate::cache::LockoutPolicy;
use crate::decision::Secret;
use crate::directory::{LdapConfig, LdapMode};
use crate::escape::has_user_placeholder;

/// Parses an nginx time (`30`, `30s`, `500ms`, `1m30s`, `2h`, `1d`): a sequence of
/// number+unit, a bare number meaning seconds (as `ngx_parse_time`).
///
/// # Errors
///
/// A description of the expected syntax.
pub fn parse_time(value: &str) -> Result<Duration, String> {
    let bad = || format!("invalid time {value:?}: expected e.g. 30s, 500ms, 1m30s");
    if value.is_empty() {
        return Err(bad());
    }
    let bytes = value.as_bytes();
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let n: u64 = value[start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &value[unit_start..i] {
            "ms" => Duration::from_millis(1),
            "" | "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(86_400),
            "w" => Duration::from_secs(7 * 86_400),
            _ => return Err(bad()),
        };
        let part = unit.checked_mul(u32::try_from(n).map_err(|_| bad())?).ok_or_else(bad)?;
        total = total.checked_add(part).ok_or_else(bad)?;
        if unit_start == i && i < bytes.len() {
            return Err(bad()); // a bare number must be last
        }
    }
    Ok(total)
}

/// [`parse_time`] in whole seconds within `min..=max`.
///
/// # Errors
///
/// Syntax, sub-second part, or out of range.
pub fn parse_secs(value: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_time(value)?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{value:?} is not whole seconds"));
    }
    if d < min || d > max {
        return Err(format!("{value:?} is out of range: {}s to {}s", min.as_secs(), max.as_secs()));
    }
    Ok(d)
}

/// A whole number within `min..=max`.
///
/// # Errors
///
/// Not a number, or out of range.
pub fn parse_number(value: &str, min: u32, max: u32) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("invalid number {value:?}: expected {min} to {max}")),
    }
}

/// `mailauth_lockout <failures> <window>` or `mailauth_lockout off`.
///
/// # Errors
///
/// Bad count or window.
pub fn parse_lockout(args: &[&str]) -> Result<Option<LockoutPolicy>, String> {
    match args {
        ["off"] => Ok(None),
        [failures, window] => Ok(Some(LockoutPolicy {
            failures: parse_number(failures, 1, 10_000)?,
            window: parse_secs(window, Duration::from_secs(1), Duration::from_secs(7 * 86_400))?,
        })),
        _ => Err("expects <failures> <window> (e.g. 10 15m) or off".into()),
    }
}

/// Reads a secret file's first line (trailing newline dropped).
///
/// # Errors
///
/// Unreadable or empty file.
pub fn read_secret_line(path: &Path) -> Result<Secret<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let line = text.lines().next().unwrap_or("").to_owned();
    if line.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(line))
}

/// Default LDAP connection and operation timeout.
pub const LDAP_DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `mailauth_ldap <url> [bind_dn=<template>] | [base=<dn> filter=<template> search_dn=<dn>
/// search_password_file=<file>] [timeout=<time>] [starttls]`.
///
/// # Errors
///
/// A message naming the offending parameter.
pub fn parse_ldap(
    args: &[&str],
    read_secret: impl Fn(&Path) -> Result<Secret<String>, String>,
) -> Result<LdapConfig, String> {
    let (url, params) = args.split_first().ok_or("expects a URL (ldap://host or ldaps://host)")?;
    let rest = url.strip_prefix("ldap://").or_else(|| url.strip_prefix("ldaps://"));
    match rest {
        Some(hostport) if !hostport.is_empty() && !hostport.contains(['/', '?', ' ']) => {}
        _ => return Err(format!("invalid URL {url:?}: expected ldap://host[:port] or ldaps://host[:port]")),
    }
    let (mut bind_dn, mut base, mut filter, mut search_dn, mut password_file) = (None, None, None, None, None);
    let mut timeout = LDAP_DEFAULT_TIMEOUT;
    let mut starttls = false;
    for p in params {
        if *p == "starttls" {
            starttls = true;
            continue;
        }
        let Some((k, v)) = p.split_once('=') else { return Err(format!("unknown parameter {p:?}")) };
        if v.is_empty() {
            return Err(format!("empty value in {p:?}"));
        }
        let slot = match k {
            "bind_dn" => &mut bind_dn,
            "base" => &mut base,
            "filter" => &mut filter,
            "search_dn" => &mut search_dn,
            "search_password_file" => &mut password_file,
            "timeout" => {
                timeout = parse_time(v)?;
                if timeout.is_zero() || timeout > Duration::from_secs(60) {
                    return Err(format!("timeout={v}: expected more than 0 and at most 60s"));
                }
                continue;
            }
            _ => return Err(format!("unknown parameter {k:?}")),
        };
        if slot.replace(v.to_string()).is_some() {
            return Err(format!("{k}= given twice"));
        }
    }
    if starttls && url.starts_with("ldaps://") {
        return Err("starttls with ldaps:// (already TLS)".into());
    }
    let mode = match (bind_dn, base, filter, search_dn, password_file) {
        (Some(t), None, None, None, None) => {
            if !has_user_placeholder(&t) {
                return Err(format!("bind_dn={t:?} has no %u"));
            }
            LdapMode::BindDn(t)
        }
        (None, Some(base), Some(filter), Some(search_dn), Some(file)) => {
            if !has_user_placeholder(&filter) {
                return Err(format!("filter={filter:?} has no %u"));
            }
            if !(filter.starts_with('(') && filter.ends_with(')')) {
                return Err(format!("filter={filter:?} must be parenthesised, e.g. (uid=%u)"));
            }
            LdapMode::Search { base, filter, search_dn, search_password: read_secret(Path::new(&file))? }
        }
        _ => {
            return Err("expects either bind_dn=<template with %u>, or all of base=, filter=, search_dn= \
                        and search_password_file="
                .into())
        }
    };
    Ok(LdapConfig { url: (*url).to_owned(), mode, timeout, starttls })
}

/// `mailauth_cache <redis://host:port[/db]> [timeout=<time>]`: the URL and the timeout.
///
/// # Errors
///
/// Bad URL scheme or timeout.
pub fn parse_cache(args: &[&str]) -> Result<(String, Duration), String> {
    let (url, params) = args.split_first().ok_or("expects a redis:// URL")?;
    if !url.starts_with("redis://") || url.len() <= "redis://".len() {
        return Err(format!("invalid URL {url:?}: expected redis://host[:port][/db]"));
    }
    let mut timeout = Duration::from_millis(500);
    for p in params {
        match p.strip_prefix("timeout=") {
            Some(v) => {
                timeout = parse_time(v)?;
                if timeout.is_zero() || timeout > Duration::from_secs(10) {
                    return Err(format!("timeout={v}: expected more than 0 and at most 10s"));
                }
            }
            None => return Err(format!("unknown parameter {p:?}")),
        }
    }
    Ok(((*url).to_owned(), timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_time("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_time("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_time("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_time("1d").unwrap(), Duration::from_secs(86_400));
        for bad in ["", "s", "3x", "-1", "3 s", "1.5s"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
        assert!(parse_secs("500ms", Duration::ZERO, Duration::from_secs(60)).unwrap_err().contains("whole seconds"));
        assert!(parse_secs("2m", Duration::ZERO, Duration::from_secs(60)).unwrap_err().contains("out of range"));
    }

    #[test]
    fn lockout() {
        assert_eq!(
            parse_lockout(&["5", "15m"]).unwrap(),
            Some(LockoutPolicy { failures: 5, window: Duration::from_secs(900) })
        );
        assert_eq!(parse_lockout(&["off"]).unwrap(), None);
        assert!(parse_lockout(&["0", "1m"]).is_err());
        assert!(parse_lockout(&["5", "0"]).is_err());
        assert!(parse_lockout(&["5"]).is_err());
    }

    fn secret(_: &Path) -> Result<Secret<String>, String> {
        Ok(Secret::new("pw".into()))
    }

    #[test]
    fn ldap_bind_dn() {
        let c =
            parse_ldap(&["ldap://127.0.0.1:389", "bind_dn=uid=%u,ou=people,dc=example,dc=org", "timeout=2s"], secret)
                .unwrap();
        assert_eq!(c.mode, LdapMode::BindDn("uid=%u,ou=people,dc=example,dc=org".into()));
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert!(!c.starttls);
        let c = parse_ldap(&["ldap://h", "bind_dn=uid=%u,dc=x", "starttls"], secret).unwrap();
        assert!(c.starttls);
        assert_eq!(c.timeout, LDAP_DEFAULT_TIMEOUT);
    }

    #[test]
    fn ldap_search() {
        let c = parse_ldap(
            &[
                "ldaps://ldap.example.org",
                "base=dc=example,dc=org",
                "filter=(uid=%u)",
                "search_dn=cn=nginx,dc=example,dc=org",
                "search_password_file=/x",
            ],
            secret,
        )
        .unwrap();
        let LdapMode::Search { base, filter, search_password, .. } = c.mode else { panic!() };
        assert_eq!(
            (base.as_str(), filter.as_str(), search_password.expose().as_str()),
            ("dc=example,dc=org", "(uid=%u)", "pw")
        );
    }

    #[test]
    fn ldap_errors() {
        let e = |args: &[&str]| parse_ldap(args, secret).unwrap_err();
        assert!(e(&["http://x", "bind_dn=uid=%u"]).contains("invalid URL"));
        assert!(e(&["ldap://", "bind_dn=uid=%u"]).contains("invalid URL"));
        assert!(e(&["ldap://h", "bind_dn=uid=x"]).contains("no %u"));
        assert!(e(&["ldap://h"]).contains("either bind_dn"));
        assert!(e(&["ldap://h", "bind_dn=uid=%u", "base=dc=x"]).contains("either bind_dn"));
        assert!(e(&["ldap://h", "bind_dn=uid=%u", "color=red"]).contains("unknown parameter"));
        assert!(e(&["ldap://h", "bind_dn=uid=%u", "timeout=0"]).contains("timeout"));
        assert!(e(&["ldaps://h", "bind_dn=uid=%u", "starttls"]).contains("starttls"));
        assert!(e(&["ldap://h", "base=b", "filter=uid=%u", "search_dn=d", "search_password_file=/f"])
            .contains("parenthesised"));
    }

    #[test]
    fn cache() {
        assert_eq!(
            parse_cache(&["redis://127.0.0.1:6379/1"]).unwrap(),
            ("redis://127.0.0.1:6379/1".into(), Duration::from_millis(500))
        );
        assert_eq!(parse_cache(&["redis://h", "timeout=2s"]).unwrap().1, Duration::from_secs(2));
        assert!(parse_cache(&["http://h"]).is_err());
        assert!(parse_cache(&["redis://h", "timeout=1m"]).is_err());
        assert!(parse_cache(&["redis://h", "x=1"]).is_err());
    }
}
