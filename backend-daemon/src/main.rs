//! `mailstored --config FILE` serves one instance; `mailstored hash-password` hashes a password
//! read from stdin for the user file.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};

fn usage() -> ! {
    eprintln!("usage: mailstored --config FILE\n       mailstored hash-password   (reads the password from stdin)");
    std::process::exit(2);
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("hash-password") => {
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
            let pw = line.trim_end_matches(['\r', '\n']);
            if pw.is_empty() {
                bail!("empty password");
            }
            println!("{}", mailstored::auth::hash_password(pw));
            Ok(())
        }
        Some("--config") | Some("-c") => {
            let path = PathBuf::from(args.get(1).unwrap_or_else(|| usage()));
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_env("MAILSTORED_LOG")
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let cfg = mailstored::config::Config::load(&path)?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(async move {
                let ctx = mailstored::server::Ctx::new(cfg)?;
                tracing::info!(instance = %ctx.cfg.name, "mailstored starting");
                tokio::select! {
                    r = mailstored::server::run(ctx) => r,
                    _ = shutdown_signal() => {
                        tracing::info!("stopping");
                        Ok(())
                    }
                }
            })
        }
        Some("--version") => {
            println!("mailstored {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        _ => usage(),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
