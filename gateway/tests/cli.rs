//! The `tributary` binary as an operator runs it: `--help`, config errors from a file and from
//! the environment, the "listening" lines, the HTTP API, and SIGTERM as a graceful shutdown.
//!
//! These live in the gateway package because `CARGO_BIN_EXE_tributary` (the built binary) is
//! only given to the tests of the package that owns it. Every wait is bounded and every child
//! is killed on every path, by [`Child`]'s drop.

// Tests: a failed expectation is a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::{Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

const WAIT: Duration = Duration::from_secs(10);
const BIN: &str = env!("CARGO_BIN_EXE_tributary");

/// A scratch directory for one test, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tributary-cli-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean environment for it: no inherited `TRIBUTARY_*` or `RUST_LOG`, a
/// loopback listener on port 0 and a private data directory.
fn tributary(scratch: &Scratch) -> Command {
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("TRIBUTARY_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
        .current_dir(&scratch.0)
        // Every listener on a free port: tests run in parallel, each with its own broker.
        .env("TRIBUTARY_LISTENERS__TCP__DEFAULT__BIND", "127.0.0.1:0")
        .env("TRIBUTARY_LISTENERS__SSL__DEFAULT__BIND", "127.0.0.1:0")
        .env("TRIBUTARY_LISTENERS__WS__DEFAULT__BIND", "127.0.0.1:0")
        .env("TRIBUTARY_LISTENERS__WSS__DEFAULT__BIND", "127.0.0.1:0")
        .env("TRIBUTARY_LISTENERS__QUIC__DEFAULT__BIND", "127.0.0.1:0")
        .env("TRIBUTARY_DASHBOARD__LISTENERS__HTTP__BIND", "127.0.0.1:0")
        .env(
            "TRIBUTARY_GATEWAY__LWM2M__LISTENERS__UDP__DEFAULT__BIND",
            "127.0.0.1:0",
        )
        .env(
            "TRIBUTARY_GATEWAY__COAP__LISTENERS__UDP__DEFAULT__BIND",
            "127.0.0.1:0",
        )
        .env(
            "TRIBUTARY_NODE__DATA_DIR",
            format!("\"{}\"", scratch.0.join("data").display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// A running broker process, killed on drop; its output read by threads.
struct Child {
    child: std::process::Child,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

fn lines(stream: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Child {
    fn spawn(mut command: Command) -> Self {
        let mut child = command.spawn().expect("spawn tributary");
        let stdout = lines(child.stdout.take().unwrap());
        let stderr = lines(child.stderr.take().unwrap());
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The address from the "listening for MQTT" line on stdout.
    fn listening_addr(&self) -> SocketAddr {
        let line = self
            .stdout
            .recv_timeout(WAIT)
            .expect("no listening line on stdout");
        let rest = line
            .strip_prefix("tributary: listening for MQTT on ")
            .unwrap_or_else(|| panic!("unexpected stdout line: {line}"));
        let (addr, listener) = rest.split_once(' ').unwrap();
        assert_eq!(listener, "(tcp:default)");
        let addr: SocketAddr = addr.parse().unwrap();
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        addr
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    fn wait(&mut self) -> ExitStatus {
        // Polls for WAIT (clippy.toml keeps `Instant::now` out of the workspace).
        let poll = Duration::from_millis(20);
        for _ in 0..WAIT.as_millis() / poll.as_millis() {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            thread::sleep(poll);
        }
        panic!("tributary did not exit within {WAIT:?}");
    }

    /// Waits (bounded) for a stderr line that `matches`; the stderr reader thread may lag
    /// behind stdout's.
    fn stderr_line(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        while let Ok(line) = self.stderr.recv_timeout(WAIT) {
            if matches(&line) {
                return Some(line);
            }
        }
        None
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion (bounded), returning status and stderr.
fn run_to_exit(command: Command) -> (ExitStatus, Vec<String>, Vec<String>) {
    let mut child = Child::spawn(command);
    let status = child.wait();
    // The reader threads end at EOF, which follows the exit.
    let collect = |rx: &mpsc::Receiver<String>| {
        let mut out = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
            out.push(line);
        }
        out
    };
    let stdout = collect(&child.stdout);
    let stderr = collect(&child.stderr);
    (status, stdout, stderr)
}

#[test]
fn help_explains_the_environment_overrides() {
    let scratch = Scratch::new();
    let mut command = tributary(&scratch);
    command.arg("--help");
    let (status, stdout, _) = run_to_exit(command);
    assert!(status.success());
    let help = stdout.join("\n");
    assert!(help.contains("--config"), "{help}");
    assert!(help.contains("TRIBUTARY_"), "{help}");
    assert!(help.contains("__ for each dot"), "{help}");
    assert!(help.contains("TRIBUTARY_MQTT__MAX_MQUEUE_LEN"), "{help}");
}

#[test]
fn unknown_key_in_the_config_file_is_one_line_naming_it() {
    let scratch = Scratch::new();
    let file = scratch.file("bad.conf", "mqtt {\n  max_inflght = 10\n}\n");
    let mut command = tributary(&scratch);
    command.arg("--config").arg(&file);
    let (status, stdout, stderr) = run_to_exit(command);
    assert!(!status.success());
    assert!(stdout.is_empty(), "{stdout:?}");
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].contains("unknown key mqtt.max_inflght"),
        "{stderr:?}"
    );
    assert!(
        stderr[0].contains("max_inflight"),
        "suggests the keys: {stderr:?}"
    );
}

#[test]
fn bad_value_in_the_config_file_names_key_value_and_expectation() {
    let scratch = Scratch::new();
    let file = scratch.file("bad.conf", "mqtt.max_inflight = 0\n");
    let mut command = tributary(&scratch);
    command.arg("--config").arg(&file);
    let (status, _, stderr) = run_to_exit(command);
    assert!(!status.success());
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(
        stderr[0].contains("mqtt.max_inflight = 0: expected"),
        "{stderr:?}"
    );
    assert!(stderr[0].contains("65535"), "{stderr:?}");
}

#[test]
fn bad_value_in_the_environment_names_the_variable() {
    let scratch = Scratch::new();
    let mut command = tributary(&scratch);
    command.env("TRIBUTARY_MQTT__MAX_INFLIGHT", "abc");
    let (status, _, stderr) = run_to_exit(command);
    assert!(!status.success());
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    let line = &stderr[0];
    assert!(line.contains("mqtt.max_inflight"), "{line}");
    assert!(line.contains("abc"), "{line}");
    assert!(line.contains("expected"), "{line}");
    assert!(line.contains("TRIBUTARY_MQTT__MAX_INFLIGHT"), "{line}");
}

#[test]
fn missing_config_file_is_refused() {
    let scratch = Scratch::new();
    let mut command = tributary(&scratch);
    command.arg("--config").arg(scratch.0.join("nope.conf"));
    let (status, _, stderr) = run_to_exit(command);
    assert!(!status.success());
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    assert!(stderr[0].contains("nope.conf"), "{stderr:?}");
}

/// A v5 CONNECT (client id `cli`, keep alive 0, no properties), written by hand.
const CONNECT_V5: [u8; 16] = [
    0x10, 14, 0x00, 0x04, b'M', b'Q', b'T', b'T', 5, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, b'c',
];

fn read_exact_bounded(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = vec![0; n];
    stream.read_exact(&mut buf).expect("read from broker");
    buf
}

#[test]
fn unknown_environment_root_is_a_warning_and_the_broker_starts() {
    let scratch = Scratch::new();
    let mut command = tributary(&scratch);
    command.env("TRIBUTARY_FOO", "1");
    let mut child = Child::spawn(command);
    let addr = child.listening_addr();

    // It serves MQTT.
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.write_all(&CONNECT_V5).unwrap();
    let header = read_exact_bounded(&mut stream, 2);
    assert_eq!(header[0], 0x20);
    let body = read_exact_bounded(&mut stream, usize::from(header[1]));
    assert_eq!(&body[..2], [0x00, 0x00], "CONNACK success");

    let warned =
        child.stderr_line(|l| l.contains("TRIBUTARY_FOO") && l.contains("unknown root key"));
    assert!(warned.is_some(), "no warning naming TRIBUTARY_FOO");
    child.signal("TERM");
    assert!(child.wait().success());
}

#[test]
fn sigterm_disconnects_clients_with_0x8b_and_exits_0() {
    let scratch = Scratch::new();
    let mut child = Child::spawn(tributary(&scratch));
    let addr = child.listening_addr();
    let mut stream = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    stream.write_all(&CONNECT_V5).unwrap();
    let header = read_exact_bounded(&mut stream, 2);
    assert_eq!(header[0], 0x20);
    let _ = read_exact_bounded(&mut stream, usize::from(header[1]));
    // Connected (PINGRESP proves the CONNECT was processed), then SIGTERM.
    stream.write_all(&[0xC0, 0x00]).unwrap();
    assert_eq!(read_exact_bounded(&mut stream, 2), [0xD0, 0x00]);

    child.signal("TERM");
    let mut expected = vec![0xE0, 25, 0x8B, 23, 0x1F, 0x00, 20];
    expected.extend_from_slice(b"Server shutting down");
    assert_eq!(read_exact_bounded(&mut stream, expected.len()), expected);
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("EOF after DISCONNECT");
    assert!(rest.is_empty(), "{rest:02x?}");
    assert!(child.wait().success(), "exit status after SIGTERM");
}

#[test]
fn the_http_api_serves_the_metrics_and_warns_about_default_credentials() {
    let scratch = Scratch::new();
    let mut child = Child::spawn(tributary(&scratch));
    let addr = child.listening_addr();
    let api = loop {
        let line = child
            .stdout
            .recv_timeout(WAIT)
            .expect("no HTTP API line on stdout");
        if let Some(rest) = line.strip_prefix("tributary: HTTP API on http://") {
            let (addr, _) = rest.split_once('/').unwrap();
            break addr.parse::<SocketAddr>().unwrap();
        }
    };
    assert!(
        child
            .stderr_line(|line| line.contains("default credentials admin/public"))
            .is_some(),
        "a warning about the default credentials"
    );
    // One MQTT connection, then the scrape counts it.
    let mut mqtt = TcpStream::connect_timeout(&addr, WAIT).unwrap();
    mqtt.write_all(&CONNECT_V5).unwrap();
    assert_eq!(read_exact_bounded(&mut mqtt, 1), [0x20]);
    let mut http = TcpStream::connect_timeout(&api, WAIT).unwrap();
    http.set_read_timeout(Some(WAIT)).unwrap();
    http.write_all(
        b"GET /api/v5/prometheus/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut response = String::new();
    http.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(
            "tributary_listener_connections_accepted{listener=\"tcp:default\",transport=\"tcp\"} 1"
        ),
        "{response}"
    );
    child.signal("TERM");
    assert!(child.wait().success(), "exit status after SIGTERM");
}
