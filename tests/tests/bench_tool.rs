//! The `tributary bench` load tool against a real gateway: a short publish run with
//! subscribers in the same process must account for every message.
//!
//! It calls the tool as a library (`tributary_gateway::bench::run`) rather than spawning the
//! binary: the gateway under test then lives in this test's process, on port 0, with no output
//! to parse but the summary itself. The run is bounded by `-L` and `--duration`; the
//! assertions are on counts, never on timings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::Parser as _;
use tributary_gateway::bench::{BenchArgs, run};
use tributary_tests::start_gateway;

async fn bench(args: &[&str]) -> serde_json::Value {
    let args = BenchArgs::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))
        .expect("bench arguments");
    run(&args).await.expect("bench run").to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_with_subscribers_reports_no_loss() {
    let gateway = start_gateway().await;
    let port = gateway.addr.port().to_string();
    for (qos, version) in [("0", "4"), ("1", "5")] {
        let summary = bench(&[
            "pub",
            "-p",
            &port,
            "-c",
            "4",
            "-i",
            "0",
            "-t",
            "bench/%i",
            "-q",
            qos,
            "-V",
            version,
            "-s",
            "64",
            "-I",
            "1",
            "-L",
            "200",
            "--subs",
            "4",
            "--duration",
            "10s",
        ])
        .await;
        assert_eq!(summary["connected"], 8, "{summary}");
        assert_eq!(summary["published"], 200, "{summary}");
        assert_eq!(summary["expected"], 200, "{summary}");
        assert_eq!(summary["delivered"], 200, "{summary}");
        assert_eq!(summary["lost"], 0, "{summary}");
        assert_eq!(summary["latency_ms"]["count"], 200, "{summary}");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_carries_a_run_without_loss() {
    let gateway = start_gateway().await;
    let ca = tributary_tests::temp_dir("bench-ca");
    std::fs::create_dir_all(&ca).unwrap();
    let cacertfile = ca.join("ca.pem");
    std::fs::write(&cacertfile, gateway.self_signed_pem()).unwrap();
    let cacertfile = cacertfile.to_str().unwrap().to_owned();
    let cases: [(&str, &[&str]); 5] = [
        ("ssl", &["--ssl", "--cacertfile", &cacertfile]),
        ("ssl", &["--ssl"]),
        ("ws", &["--ws"]),
        ("wss", &["--ssl", "--ws", "--cacertfile", &cacertfile]),
        ("quic", &["--quic", "--cacertfile", &cacertfile]),
    ];
    for (listener, flags) in cases {
        let port = gateway.addr_of(listener, "default").port().to_string();
        let mut args = vec![
            "pub",
            "-p",
            &port,
            "-c",
            "2",
            "-i",
            "0",
            "-t",
            "bench/%i",
            "-q",
            "1",
            "-s",
            "32",
            "-I",
            "1",
            "-L",
            "100",
            "--subs",
            "2",
            "--duration",
            "10s",
        ];
        args.extend_from_slice(flags);
        let summary = bench(&args).await;
        assert_eq!(summary["connected"], 4, "{flags:?}: {summary}");
        assert_eq!(summary["delivered"], 100, "{flags:?}: {summary}");
        assert_eq!(summary["lost"], 0, "{flags:?}: {summary}");
    }
    std::fs::remove_dir_all(&ca).unwrap();
    gateway.shutdown().await;
}

#[tokio::test]
async fn contradictory_transports_are_refused() {
    let args = BenchArgs::try_parse_from(["bench", "conn", "--quic", "--ws", "-c", "1"]).unwrap();
    let error = run(&args).await.unwrap_err();
    assert!(error.to_string().contains("--quic"), "{error}");
}
