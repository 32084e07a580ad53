//! `mailctl`: the operator's CLI. Every failure prints one line on stderr and exits with 1.
#![forbid(unsafe_code)]

mod admin_client;
mod args;
mod ldap_import;
mod mail_cmd;
mod repl_cmd;
mod roles_cmd;
mod ticket_cmd;

use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::args::Args;

const USAGE: &str = "\
usage:
  mailctl roles --db DIR set USER BACKEND [--state active|moving|legacy:HOST[:PORT]]
  mailctl roles --db DIR get USER
  mailctl roles --db DIR list
  mailctl roles --db DIR delete USER
  mailctl roles --db DIR import FILE.csv     (lines: user,backend[,state]; all or nothing)
  mailctl roles --db DIR import-ldap --url ldap://HOST:PORT --base DN [--filter F]
                  [--bind-dn DN --bind-password-file F] [--user-attr uid] [--backend-attr mailHost]
                  [--timeout SECONDS] [--dry-run]
                                             (one user per entry, backend from the attribute;
                                              all or nothing, the first bad entry named by DN)
  mailctl roles --db DIR export              (CSV on stdout, the import format)
  mailctl roles --db DIR backend add NAME IP --imap PORT --pop3 PORT --lmtp PORT [--partner NAME] [--state STATE]
  mailctl roles --db DIR backend set NAME [--state up|down|failover] [--ip IP] [--imap PORT] [--pop3 PORT]
                                          [--lmtp PORT] [--partner NAME|none]
  mailctl roles --db DIR backend list
  mailctl roles --db DIR backend delete NAME
  mailctl roles --db DIR seq                 (last changelog sequence number)
  mailctl ticket-key generate > FILE         (a new random login-ticket key, 64 hex characters)
  mailctl ticket issue --key FILE --user USER [--ttl SECONDS] [--now UNIX]
                                             (ttl 0 or negative: an already expired ticket)
  mailctl ticket verify --key FILE TICKET
  mailctl repl status --admin NAME=HOST:PORT[,...] [--json]
                                             (role, epoch, link, pending users, lag of each backend)
  mailctl repl sync --user USER [--full] --admin NAME=HOST:PORT[,...]
                                             (compare USER now on the primary; --full checks every
                                              record and message file; repairs what differs)
  mailctl check repl --warn SECONDS --crit SECONDS --admin NAME=HOST:PORT[,...]
                                             (Nagios: one line with perfdata, exit 0/1/2/3)
  mailctl failover BACKEND --db DIR --admin BACKEND=HOST:PORT,PARTNER=HOST:PORT
                                             (demote BACKEND if it answers, promote its partner,
                                              mark BACKEND failover in roles)
  mailctl quota get --user USER --admin NAME=HOST:PORT[,...] [--json]
                                             (usage and limit on the primary)
  mailctl quota set --user USER --bytes N|none|default --admin NAME=HOST:PORT[,...]
                                             (the user's limit on every backend given; none:
                                              unlimited, default: [store] quota_bytes)
  mailctl undelete list --user USER [--mailbox M] [--since T] --admin NAME=HOST:PORT[,...] [--json]
  mailctl undelete restore --user USER [--mailbox M] [--since T] --admin NAME=HOST:PORT[,...]
                                             (messages expunged within the retention, from
                                              M, since T (unix seconds or RFC 3339), back into
                                              their folder with new UIDs; deleted folders too)
--db may also come from MAILCTL_ROLES_DB, --admin from MAILCTL_ADMIN; --token-file FILE (or
MAILCTL_ADMIN_TOKEN_FILE) holds the admin API's bearer token where the backends require one.";

fn main() -> ExitCode {
    let args = Args::new(std::env::args().skip(1));
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: anyhow's alternate form joins the causes with ": ".
            eprintln!("mailctl: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: Args) -> Result<()> {
    let Some(cmd) = args.next_positional() else {
        bail!("no command given (mailctl help)");
    };
    match cmd.as_str() {
        "roles" => roles_cmd::run(args),
        "ticket-key" => ticket_cmd::run_key(args),
        "ticket" => ticket_cmd::run(args),
        "repl" => repl_cmd::run(args),
        "failover" => repl_cmd::failover(args),
        "quota" => mail_cmd::quota(args),
        "undelete" => mail_cmd::undelete(args),
        // A Nagios plugin: a usage error is UNKNOWN (3), not 1 (WARNING).
        "check" => match repl_cmd::check(args) {
            Ok(code) => std::process::exit(i32::from(code)),
            Err(e) => {
                println!("REPL UNKNOWN - {}", format!("{e:#}").replace('\n', " "));
                std::process::exit(3);
            }
        },
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown command {other:?} (mailctl help)"),
    }
}
