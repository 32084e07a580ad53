//! Parse errors (with positions) and runtime errors.

use super::support::*;
use crate::{capabilities, parse, parse_with_limits, Envelope, Limits, RuntimeError};

#[test]
fn parse_errors_have_positions_and_messages() {
    let table: &[(&str, u32, u32, &str)] = &[
        // syntax
        ("keep\nstop;", 2, 1, "missing ';' after 'keep' (found identifier 'stop')"),
        ("keep", 1, 5, "missing ';' after 'keep' (found end of script)"),
        ("if true { keep; ", 1, 17, "missing '}' at end of script"),
        ("keep;\n  fileinto \"a", 2, 12, "unterminated string (missing closing '\"')"),
        ("/* open", 1, 1, "unterminated comment ('/*' without '*/')"),
        (
            "require \"fileinto\";\nfileinto text:\nabc\n",
            2,
            10,
            "unterminated multi-line string (missing a line with a single '.')",
        ),
        ("fileinto text: x\n.\n;", 1, 16, "'text:' must be followed by a line break"),
        ("keep; }", 1, 7, "expected a command, found '}'"),
        ("keep @;", 1, 6, "unexpected character '@'"),
        ("if true keep;", 1, 9, "expected '{' to start the block of 'if', found identifier 'keep'"),
        ("if { keep; }", 1, 4, "'if' needs a test (found '{')"),
        ("if anyof true { }", 1, 10, "'anyof' needs a test list in parentheses (found identifier 'true')"),
        (
            "if anyof (true false) { }",
            1,
            16,
            "expected ',' or ')' in the test list of 'anyof', found identifier 'false'",
        ),
        ("if header [\"a\" \"b\"] \"c\" { }", 1, 16, "expected ',' or ']' in string list, found string"),
        ("if header [\"a\", 1] \"c\" { }", 1, 17, "expected a string in list, found number 1"),
        ("if size : 1 { }", 1, 9, "expected a tag name after ':'"),
        ("if size :over 99999999999999999999 { }", 1, 15, "number too large"),
        ("if size :over 99999999999G { }", 1, 15, "number too large"),
        // structure
        ("elsif true { }", 1, 1, "'elsif' without a preceding 'if'"),
        ("if true { } keep; else { }", 1, 19, "'else' without a preceding 'if'"),
        (
            "keep;\nrequire \"fileinto\";",
            2,
            1,
            "require is only allowed at the start of the script, before other commands",
        ),
        (
            "if true { require \"fileinto\"; }",
            1,
            11,
            "require is only allowed at the start of the script, before other commands",
        ),
        // unknown things
        ("fileint \"x\";", 1, 1, "unknown command 'fileint'"),
        ("if frobnicate { }", 1, 4, "unknown test 'frobnicate'"),
        ("require [\"fileinto\", \"reject\"];", 1, 22, "unsupported capability \"reject\" in require"),
        ("keep :copy;", 1, 6, "unknown tag ':copy' for 'keep'"),
        ("if header :regex \"a\" \"b\" { }", 1, 11, "unknown tag ':regex' for 'header'"),
        (
            "if header :comparator \"i;ascii-numeric\" \"a\" \"b\" { }",
            1,
            23,
            "unsupported comparator \"i;ascii-numeric\"",
        ),
        // capability not required
        ("fileinto \"x\";", 1, 1, "the fileinto command needs the \"fileinto\" capability: add require \"fileinto\";"),
        (
            "if envelope \"from\" \"x\" { }",
            1,
            4,
            "the envelope test needs the \"envelope\" capability: add require \"envelope\";",
        ),
        (
            "require \"fileinto\";\nfileinto :copy \"x\";",
            2,
            10,
            "the :copy tag needs the \"copy\" capability: add require \"copy\";",
        ),
        (
            "keep :flags \"\\\\Seen\";",
            1,
            6,
            "the :flags tag needs the \"imap4flags\" capability: add require \"imap4flags\";",
        ),
        (
            "setflag \"\\\\Seen\";",
            1,
            1,
            "the setflag command needs the \"imap4flags\" capability: add require \"imap4flags\";",
        ),
        ("vacation \"x\";", 1, 1, "the vacation command needs the \"vacation\" capability: add require \"vacation\";"),
        ("if body :contains \"x\" { }", 1, 4, "the body test needs the \"body\" capability: add require \"body\";"),
        ("set \"a\" \"b\";", 1, 1, "the set command needs the \"variables\" capability: add require \"variables\";"),
        (
            "if string \"a\" \"b\" { }",
            1,
            4,
            "the string test needs the \"variables\" capability: add require \"variables\";",
        ),
        // argument types and counts
        ("require \"fileinto\";\nfileinto 42;", 2, 10, "'fileinto' expects a string (mailbox), found a number"),
        (
            "require \"fileinto\";\nfileinto [\"a\", \"b\"];",
            2,
            10,
            "'fileinto' expects a string (mailbox), found a string list",
        ),
        ("require \"fileinto\";\nfileinto;", 2, 1, "'fileinto' is missing its mailbox argument"),
        (
            "require \"fileinto\";\nfileinto \"a\" \"b\";",
            2,
            14,
            "too many arguments for 'fileinto': unexpected a string",
        ),
        ("require \"fileinto\";\nfileinto \"\";", 2, 10, "fileinto needs a non-empty mailbox name"),
        ("keep \"x\";", 1, 6, "too many arguments for 'keep': unexpected a string"),
        ("redirect \"not an address\";", 1, 10, "invalid redirect address \"not an address\""),
        ("if header \"a\" { }", 1, 4, "'header' is missing its key list argument"),
        ("if header :is 1 \"a\" { }", 1, 15, "'header' expects a string list (header names), found a number"),
        ("if header :is :contains \"a\" \"b\" { }", 1, 15, "more than one match type for 'header'"),
        ("if address :all :domain \"to\" \"b\" { }", 1, 17, "more than one address part for 'address'"),
        ("if header \"a\" \"b\" :is { }", 1, 19, "tag ':is' for 'header' must come before the positional arguments"),
        ("if size 100 { }", 1, 4, "'size' needs :over or :under followed by a number"),
        ("if size :over \"1\" { }", 1, 15, "'size' expects a number (size limit), found a string"),
        ("if size :over 1 :under 2 { }", 1, 17, "'size' takes exactly one of :over and :under"),
        ("if true \"x\" { }", 1, 9, "too many arguments for 'true': unexpected a string"),
        ("if not \"x\" true { }", 1, 8, "'not' takes a test, not a string"),
        ("if exists { }", 1, 4, "'exists' is missing its header names argument"),
        (
            "require \"variables\";\nset :lower :upper \"a\" \"b\";",
            2,
            12,
            "modifier ':upper' conflicts with another modifier of the same precedence",
        ),
        ("require \"variables\";\nset \"a b\" \"c\";", 2, 5, "invalid set variable name \"a b\""),
        ("require \"variables\";\nset \"${x}\" \"c\";", 2, 5, "invalid set variable name \"${x}\""),
        ("require \"variables\";\nset \"a\" \"${env.x}\";", 2, 9, "unknown variable namespace in '${env.x}'"),
        ("require \"body\";\nif body :raw :text \"a\" { }", 2, 14, "more than one body transform for 'body'"),
        (
            "require \"vacation\";\nvacation :days \"7\" \"x\";",
            2,
            16,
            "'vacation' expects a number (days), found a string",
        ),
        ("require \"vacation\";\nvacation :days 7;", 2, 1, "'vacation' is missing its reason argument"),
        ("require \"imap4flags\";\nsetflag \"my var\" \"x\";", 2, 9, "invalid setflag variable name \"my var\""),
    ];
    for (script, line, column, message) in table {
        let (l, c, m) = parse_err(script);
        assert_eq!((l, c, m.as_str()), (*line, *column, *message), "script:\n{script}");
    }
}

#[test]
fn parse_error_display_names_the_position() {
    let e = parse("keep;\n\n   discrad;").unwrap_err();
    assert_eq!(e.to_string(), "line 3, column 4: unknown command 'discrad'");
}

#[test]
fn columns_count_characters_not_bytes() {
    let (l, c, _) = parse_err("if header :is \"subject\" \"é\" { bogus; }");
    assert_eq!((l, c), (1, 31));
}

#[test]
fn parse_limits() {
    let small = Limits { max_script_size: 10, ..Limits::default() };
    let e = parse_with_limits("keep; keep; keep;", &small).unwrap_err();
    assert_eq!((e.line(), e.column()), (1, 1));
    assert!(e.message.contains("larger than the limit of 10"), "{}", e.message);

    let shallow = Limits { max_nesting: 3, ..Limits::default() };
    assert!(parse_with_limits("if true { if true { if true { keep; } } }", &shallow).is_ok());
    let e = parse_with_limits("if true { if true { if true { if true { keep; } } } }", &shallow).unwrap_err();
    assert_eq!((e.line(), e.column(), e.message.as_str()), (1, 34, "nesting deeper than 3 levels"));
    let e = parse_with_limits("if not not not not true { }", &shallow).unwrap_err();
    assert_eq!((e.line(), e.column()), (1, 16));
    // The default limit stops absurd nesting without overflowing the stack.
    let deep = format!("if {}true {{ }}", "not ".repeat(10_000));
    assert!(parse(&deep).is_err());
}

#[test]
fn runtime_errors() {
    let msg = "From: a@example.org\nTo: me@example.com\nSubject: s\n\nx\n";
    let limits = Limits::default();
    let err = |script: &str| try_run_env(script, msg, &env(), &limits).unwrap_err();

    let five = r#"redirect "a@x.org"; redirect "b@x.org"; redirect "c@x.org"; redirect "d@x.org"; redirect "e@x.org";"#;
    assert_eq!(err(five), RuntimeError::TooManyRedirects { limit: 4 });
    // Four distinct targets are fine, and repeats do not count.
    let four = r#"redirect "a@x.org"; redirect "b@x.org"; redirect "c@x.org"; redirect "d@x.org"; redirect "A@x.org";"#;
    assert_eq!(try_run_env(four, msg, &env(), &limits).unwrap().actions.len(), 4);

    assert_eq!(err(r#"require "vacation"; vacation "a"; vacation "b";"#), RuntimeError::DuplicateVacation);

    let many: String = (0..40).map(|i| format!("fileinto \"f{i}\";")).collect();
    assert_eq!(err(&format!("require \"fileinto\";{many}")), RuntimeError::TooManyActions { limit: 32 });

    let tiny = Limits { max_string_len: 8, ..Limits::default() };
    let long = r#"require "variables"; set "a" "123456789";"#;
    assert_eq!(try_run_env(long, msg, &env(), &tiny).unwrap_err(), RuntimeError::StringTooLong { len: 9, limit: 8 });
    let doubling = r#"require "variables"; set "a" "1234"; set "a" "${a}${a}"; set "a" "${a}${a}";"#;
    assert!(matches!(try_run_env(doubling, msg, &env(), &tiny).unwrap_err(), RuntimeError::StringTooLong { .. }));

    let few = Limits { max_variables: 2, ..Limits::default() };
    let vars = r#"require "variables"; set "a" "1"; set "b" "2"; set "a" "3"; set "c" "4";"#;
    assert_eq!(try_run_env(vars, msg, &env(), &few).unwrap_err(), RuntimeError::TooManyVariables { limit: 2 });

    let bad = r#"require "variables"; set "to" "not an address"; redirect "${to}";"#;
    assert_eq!(err(bad), RuntimeError::InvalidAddress("not an address".into()));
    let empty = r#"require ["variables", "fileinto"]; fileinto "${nothing}";"#;
    assert_eq!(err(empty), RuntimeError::InvalidMailbox(String::new()));
}

#[test]
fn runtime_error_is_not_raised_by_untaken_branches() {
    let s = r#"require "vacation"; if false { vacation "a"; } vacation "b";"#;
    let e = Envelope { from: "a@example.org".into(), ..env() };
    assert!(try_run_env(s, "To: me@example.com\n\nx\n", &e, &Limits::default()).is_ok());
}

#[test]
fn capability_string_and_required() {
    assert_eq!(
        capabilities(),
        "fileinto envelope imap4flags copy vacation body variables comparator-i;octet comparator-i;ascii-casemap \
         encoded-character"
    );
    let s = parse(r#"require ["FileInto", "comparator-i;octet"]; require "copy";"#).unwrap();
    assert_eq!(s.required().collect::<Vec<_>>(), ["comparator-i;octet", "copy", "fileinto"]);
}

#[test]
fn hostile_input_never_panics() {
    let inputs = [
        "",
        "\0",
        "\"",
        "text:",
        "text:\n",
        "[",
        "[\"a\"",
        "if",
        "if (",
        "if anyof (",
        "if header",
        ":",
        "/*",
        "/",
        "\\",
        "${",
        "require",
        "require [",
        "if true {",
        "}",
        "if not",
        "keep;;",
        "123",
        "1K",
        "if size :over",
        "é",
    ];
    for s in inputs {
        let _ = parse(s);
    }
}
