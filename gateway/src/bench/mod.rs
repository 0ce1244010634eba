//! `tributary bench`: a load tool for any MQTT broker, with emqtt-bench's flags and habits.
//!
//! - `tributary bench conn`: opens `-c` connections, `-i` ms apart, and holds them until
//!   `--duration` ends: connect rate and failures (and, read from outside, the broker's memory
//!   per connection).
//! - `tributary bench sub`: `-c` subscribers to `-t`, counting what they receive.
//! - `tributary bench pub`: `-c` publishers to `-t`, one message of `-s` bytes every `-I` ms
//!   each (`-I 0`: as fast as the broker takes them), until `-L` messages in all or
//!   `--duration`. With `--subs N` the same process also runs N subscribers (to
//!   `--sub-topic`, `-t` by default) before the publishers start, and then reports deliveries,
//!   loss (expected minus received) and end-to-end latency: every payload starts with the
//!   publisher's timestamp in nanoseconds on a clock the subscribers share. Each of the
//!   benchmark suite's scenarios is one such command (see `bench/run`).
//!
//! Topics take `%i` (the client's index) and `%c` (its client id). The tool is a client of
//! the broker only through sockets, one tokio task per connection; it prints a line a second
//! on stderr and a JSON summary on stdout, and stops by itself.
//!
//! Transports: TCP (default), TLS (`--ssl`), WebSocket (`--ws`, path `--ws-path`), both
//! (`--ssl --ws`) and QUIC (`--quic`, ALPN `mqtt`). TLS verifies against `--cacertfile` when
//! given, and does not verify the broker's certificate otherwise (see `transport`).

mod client;
mod report;
mod roles;
mod scenario;
mod stats;
mod template;
mod transport;

use std::{net::IpAddr, time::Duration};

use clap::{ArgAction, Args, Parser, Subcommand};

pub use report::{Latency, Summary};

/// `tributary bench`: load any MQTT broker (emqtt-bench style) and measure it.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tributary bench",
    after_long_help = "\
Each mode prints a line a second on stderr and a JSON summary on stdout at the end.
Run `tributary bench pub --help` (and conn, sub) for the flags; -h is the host, as in
emqtt-bench, so help is only --help. Topics take %i (client index) and %c (client id).

Examples (the benchmark suite in bench/run uses exactly these shapes):
  tributary bench conn -c 10000 -i 0 --duration 20s --ifaddr 127.0.0.1,127.0.0.2
  tributary bench pub -c 100 -t 'bench/%i' -s 64 -I 0 --subs 100 --duration 10s
  tributary bench pub -c 200 -t 'bench/%i' -I 10 --subs 1 --sub-topic 'bench/+'
  tributary bench sub -c 10 -t 'sensors/#' -q 1

Transports: TCP by default; --ssl (TLS), --ws (WebSocket, path --ws-path), --ssl --ws
(WSS), --quic (ALPN mqtt). TLS checks the broker's certificate against --cacertfile when
given, and does not verify it otherwise."
)]
pub struct BenchArgs {
    /// What to run.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The load tool's modes.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Open connections and hold them: connect rate and failures.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Conn(ConnArgs),
    /// Publish (and, with --subs, subscribe in the same process): rates, loss, latency.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Pub(PubArgs),
    /// Subscribe and count what arrives.
    #[command(disable_help_flag = true, disable_version_flag = true)]
    Sub(SubArgs),
}

/// Flags every mode takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Broker host.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// Number of clients (publishers in `pub`).
    #[arg(short = 'c', long = "count", default_value_t = 200)]
    pub count: u64,
    /// Index of the first client (what %i starts at).
    #[arg(short = 'n', long = "startnumber", default_value_t = 0)]
    pub start_number: u64,
    /// Milliseconds between two clients' connects (0: all at once, --max-connecting at a time).
    #[arg(short = 'i', long = "interval", default_value_t = 10)]
    pub interval_ms: u64,
    /// MQTT version: 3 (3.1), 4 (3.1.1) or 5 (5.0).
    #[arg(short = 'V', long = "version", default_value_t = 5,
          value_parser = clap::value_parser!(u8).range(3..=5))]
    pub version: u8,
    /// Keep alive in seconds (0: off).
    #[arg(short = 'k', long = "keepalive", default_value_t = 300)]
    pub keep_alive: u16,
    /// Clean session (3.1.1) / clean start (5.0).
    #[arg(short = 'C', long = "clean", default_value_t = true, action = ArgAction::Set)]
    pub clean: bool,
    /// User name.
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "password")]
    pub password: Option<String>,
    /// Client id prefix: ids are {prefix}_{pub|sub|conn}_{index} (default tb{process id}).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Local addresses to connect from, round robin (127.0.0.1,127.0.0.2,...): each gives
    /// another ephemeral port range, for more connections than one address allows.
    #[arg(long, value_delimiter = ',')]
    pub ifaddr: Vec<IpAddr>,
    /// How long the run lasts (publishing, or holding connections): 10s, 1m, 500ms; a plain
    /// number is seconds.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Connects in progress at most (TCP handshake to CONNACK); more at once overflow the
    /// broker's accept backlog and cost a one-second SYN retransmit.
    #[arg(long, default_value_t = 100)]
    pub max_connecting: usize,
    /// Bound on one connect (handshake, CONNACK, SUBACK).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// TLS (with --ws: WebSocket over TLS).
    #[arg(short = 'S', long)]
    pub ssl: bool,
    /// MQTT over WebSocket (subprotocol mqtt).
    #[arg(long)]
    pub ws: bool,
    /// The WebSocket path.
    #[arg(long, default_value = "/mqtt")]
    pub ws_path: String,
    /// MQTT over QUIC (ALPN mqtt; -p is the UDP port).
    #[arg(long)]
    pub quic: bool,
    /// CA certificates (PEM) to verify the broker's TLS certificate with; without it the
    /// certificate is not verified.
    #[arg(long)]
    pub cacertfile: Option<std::path::PathBuf>,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// `tributary bench conn`.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Flags every mode takes.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// `tributary bench pub`.
#[derive(Debug, Clone, Args)]
pub struct PubArgs {
    /// Flags every mode takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Topic to publish to; %i and %c are replaced per client.
    #[arg(short = 't', long)]
    pub topic: String,
    /// QoS of the messages (0 or 1; also of the --subs subscriptions).
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
    /// Payload size in bytes (at least 8: the first 8 carry the timestamp).
    #[arg(short = 's', long = "size", default_value_t = 256)]
    pub size: usize,
    /// Milliseconds between two messages of one publisher (0: as fast as possible).
    #[arg(short = 'I', long = "interval_of_msg", default_value_t = 1000)]
    pub interval_of_msg: u64,
    /// Messages to publish in all, shared among the publishers (0: no limit).
    #[arg(short = 'L', long = "limit", default_value_t = 0)]
    pub limit: u64,
    /// QoS 1 messages a publisher has awaiting PUBACK at most.
    #[arg(short = 'F', long = "inflight", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=65535))]
    pub inflight: u64,
    /// Set the retain flag.
    #[arg(short = 'r', long)]
    pub retain: bool,
    /// Subscribers to run in this process before publishing starts, for loss and latency.
    #[arg(long, default_value_t = 0)]
    pub subs: u64,
    /// The subscribers' filter (%i is the subscriber's index); default: the -t template.
    #[arg(long)]
    pub sub_topic: Option<String>,
    /// After publishing, how long to wait at most for the expected deliveries.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,
}

/// `tributary bench sub`.
#[derive(Debug, Clone, Args)]
pub struct SubArgs {
    /// Flags every mode takes.
    #[command(flatten)]
    pub common: CommonArgs,
    /// Filter to subscribe to; %i and %c are replaced per client.
    #[arg(short = 't', long)]
    pub topic: String,
    /// Subscription QoS (0 or 1).
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The host did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host as given.
        host: String,
        /// Why.
        reason: String,
    },
    /// A flag value that cannot work.
    #[error("{0}")]
    Invalid(String),
}

/// `10s`, `500ms`, `1m`, or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// Runs the load tool: live lines on stderr while it runs, the summary when it is done.
pub async fn run(args: &BenchArgs) -> Result<Summary, BenchError> {
    match &args.command {
        BenchCommand::Conn(conn) => scenario::conn(&conn.common).await,
        BenchCommand::Pub(publish) => scenario::publish(publish).await,
        BenchCommand::Sub(sub) => scenario::subscribe(sub).await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn parse(args: &[&str]) -> Result<BenchArgs, clap::Error> {
        BenchArgs::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
    }

    #[test]
    fn emqtt_bench_flags_parse() {
        let args = parse(&[
            "pub",
            "-h",
            "10.0.0.1",
            "-p",
            "1884",
            "-c",
            "3",
            "-i",
            "0",
            "-t",
            "t/%i",
            "-q",
            "1",
            "-s",
            "64",
            "-I",
            "5",
            "-L",
            "100",
            "-V",
            "4",
            "--ifaddr",
            "127.0.0.1,127.0.0.2",
            "--duration",
            "2",
            "--subs",
            "3",
        ])
        .unwrap();
        let BenchCommand::Pub(p) = args.command else {
            panic!("not pub")
        };
        assert_eq!(p.common.host, "10.0.0.1");
        assert_eq!(p.common.port, 1884);
        assert_eq!(p.common.count, 3);
        assert_eq!(p.common.interval_ms, 0);
        assert_eq!(p.common.version, 4);
        assert_eq!(p.common.ifaddr.len(), 2);
        assert_eq!(p.common.duration, Duration::from_secs(2));
        assert_eq!((p.qos, p.size, p.interval_of_msg, p.limit), (1, 64, 5, 100));
        assert_eq!(p.subs, 3);
    }

    #[test]
    fn help_is_long_only_and_bad_values_are_refused() {
        let help = parse(&["conn", "--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(help.to_string().contains("--ifaddr"));
        assert!(parse(&["conn", "-h"]).is_err(), "-h needs a host");
        assert!(parse(&["conn", "-V", "6"]).is_err());
        assert!(parse(&["pub", "-t", "x", "-q", "2"]).is_err());
        assert!(parse(&["pub", "-q", "0"]).is_err(), "pub needs -t");
    }

    #[test]
    fn durations_take_units_or_seconds() {
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
    }
}
