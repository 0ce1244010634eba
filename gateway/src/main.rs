//! The `tributary` binary: command line, logging, signals, and the gateway.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tracing_subscriber::{EnvFilter, fmt};
use tributary_config::{Config, LogFormatter, LogLevel};
use tributary_gateway::{Gateway, bench::BenchArgs};

/// Tributary: a multi-protocol IoT gateway broker (MQTT 3.1.1 and 5.0).
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    after_long_help = "\
CONFIGURATION:
  Settings come from three layers, later wins:
    1. the embedded defaults (the broker runs with no file at all);
    2. the HOCON file given with --config (see etc/tributary.conf for every key);
    3. environment variables: TRIBUTARY_ + the dotted key upper-cased, with __ for each dot.
       The value is read as HOCON, so numbers, booleans, units and strings all work:
         TRIBUTARY_LISTENERS__TCP__DEFAULT__BIND=127.0.0.1:2883
         TRIBUTARY_MQTT__MAX_MQUEUE_LEN=50
         TRIBUTARY_MQTT__IDLE_TIMEOUT=30s
  Units are EMQX's: durations 100ms, 30s, 5m, 2h, 1d, infinity; sizes 512B, 64KB, 1MB
  (1MB = 1,048,576 bytes). A bad key or value stops the broker with one line naming the key,
  the value and what was expected. RUST_LOG, when set, overrides log.console.level.

LOAD TOOL:
  `tributary bench conn|pub|sub ...` loads any MQTT broker with emqtt-bench's flags
  (-h host -p port -c clients -i connect-interval-ms -t topic -q qos -s size
  -I publish-interval-ms -L limit --duration, -V 3|4|5, --ifaddr). See
  `tributary bench --help` and `tributary bench pub --help`.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// HOCON configuration file.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Without a command, the broker runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load tool: connect, publish and subscribe against any MQTT broker and measure it.
    Bench(BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Bench(args)) = cli.command {
        return bench(&args);
    }
    let loaded = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("tributary: {error}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&loaded.config);
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    match run(&loaded.config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("tributary: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the load tool on its own runtime; the JSON summary is the one line on stdout.
fn bench(args: &BenchArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tributary bench: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(tributary_gateway::bench::run(args)) {
        Ok(summary) => {
            println!("{}", summary.to_json());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("tributary bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let console = &config.log.console;
    if !console.enable {
        return;
    }
    // tracing has five levels; EMQX's syslog-style ones fold onto them.
    let level = match console.level {
        LogLevel::Debug => "debug",
        LogLevel::Info | LogLevel::Notice => "info",
        LogLevel::Warning => "warn",
        _ => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match console.formatter {
        LogFormatter::Json => builder.json().init(),
        LogFormatter::Text => builder.init(),
    }
}

fn run(config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let gateway = Gateway::start(config).await?;
        let shutdown = shutdown_signal();
        // One gateway in this process: what library crates emit through the `metrics` facade
        // joins its scrape.
        if !gateway.install_global_recorder() {
            tracing::warn!("a metrics recorder was installed already; facade metrics not exported");
        }
        for listener in gateway.listeners() {
            // The gateways' devices speak their own protocol on these ports.
            let protocol = match listener.kind {
                "coap" => "CoAP",
                "lwm2m" => "LwM2M",
                _ => "MQTT",
            };
            println!(
                "tributary: listening for {protocol} on {} ({}:{})",
                listener.addr, listener.kind, listener.name
            );
        }
        if let Some(addr) = gateway.http_addr() {
            println!(
                "tributary: HTTP API on http://{addr}/api/v5 (metrics: /api/v5/prometheus/stats)"
            );
        }
        shutdown.await;
        tracing::warn!("shutting down");
        gateway.shutdown().await;
        Ok::<(), anyhow::Error>(())
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a supervisor that signals as soon as it reads the
/// listening lines is heard (the default action would kill the process ungracefully).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(%error, "cannot listen for SIGINT/SIGTERM");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
