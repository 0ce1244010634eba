//! The three modes, start to end: who connects when, when publishing starts and stops, how
//! long deliveries may drain, and what the summary says.
//!
//! Every phase is bounded: connects by `--connect-timeout`, publishing and holding by
//! `--duration` (or `-L`), draining by `--drain`, and closing by a grace period after which
//! leftover tasks are aborted. The run always ends.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::Semaphore, task::JoinSet, time::Instant};
use tokio_util::sync::CancellationToken;
use tributary_mqtt_core::{ByteStr, ProtocolVersion, QoS, TopicFilter};

use super::{
    BenchError, CommonArgs, PubArgs, SubArgs,
    client::{Client, ClientError, PublishTemplate, Target},
    report::{self, Latency, Summary},
    roles::{self, Clock, PublishPlan},
    stats::Stats,
    template,
    transport::Transport,
};

/// How long closing connections may take before their tasks are aborted.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How often a waiting phase looks at the counters.
const POLL: Duration = Duration::from_millis(5);

/// What every mode shares: the target, the clock, the counters, the connect gate.
struct Run {
    target: Target,
    prefix: String,
    clock: Clock,
    stats: Arc<Stats>,
    gate: Arc<Semaphore>,
    live: CancellationToken,
}

impl Run {
    async fn new(common: &CommonArgs) -> Result<Self, BenchError> {
        if common.max_connecting == 0 {
            return Err(BenchError::Invalid(
                "--max-connecting must be at least 1".into(),
            ));
        }
        let addr = resolve(&common.host, common.port).await?;
        let transport = Transport::from_args(common, addr)?;
        let version = match common.version {
            3 => ProtocolVersion::V31,
            4 => ProtocolVersion::V311,
            _ => ProtocolVersion::V5,
        };
        let clock = Clock::start();
        let stats = Arc::new(Stats::default());
        let live = CancellationToken::new();
        tokio::spawn(report::live(Arc::clone(&stats), clock, live.clone()));
        Ok(Self {
            target: Target {
                addr,
                transport,
                ifaddrs: common.ifaddr.clone(),
                version,
                keep_alive: common.keep_alive,
                clean: common.clean,
                username: common.username.clone(),
                password: common.password.clone(),
                timeout: common.connect_timeout,
            },
            prefix: common
                .prefix
                .clone()
                .unwrap_or_else(|| format!("tb{}", std::process::id())),
            clock,
            stats,
            gate: Arc::new(Semaphore::new(common.max_connecting)),
            live,
        })
    }

    /// A handle for one client task.
    fn client(&self, role: &'static str, index: u64, start_at: Instant) -> ClientTask {
        ClientTask {
            target: self.target.clone(),
            client_id: template::client_id(&self.prefix, role, index),
            index,
            start_at,
            clock: self.clock,
            stats: Arc::clone(&self.stats),
            gate: Arc::clone(&self.gate),
        }
    }

    /// Waits until `total` clients are connected or failed, or until `limit`.
    async fn settled(&self, total: u64, limit: Instant) {
        while Stats::get(&self.stats.connected) + Stats::get(&self.stats.connect_failed) < total
            && Instant::now() < limit
        {
            tokio::time::sleep(POLL).await;
        }
    }

    fn summary(
        &self,
        mode: &'static str,
        clients: u64,
        phase_start_ns: u64,
        expected: Option<u64>,
    ) -> Summary {
        let stats = &*self.stats;
        let rate = |count: u64, from: u64, to: u64| {
            let seconds = Duration::from_nanos(to.saturating_sub(from)).as_secs_f64();
            #[allow(clippy::cast_precision_loss)]
            if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            }
        };
        let connected = Stats::get(&stats.connected);
        let published = Stats::get(&stats.published);
        let delivered = Stats::get(&stats.delivered);
        Summary {
            mode,
            elapsed: Duration::from_nanos(self.clock.now_ns()),
            clients,
            connected,
            connect_failed: Stats::get(&stats.connect_failed),
            disconnected: Stats::get(&stats.disconnected),
            connect_rate: rate(connected, 0, Stats::get(&stats.last_connect_ns)),
            published,
            publish_rate: rate(
                published,
                phase_start_ns,
                Stats::get(&stats.last_publish_ns),
            ),
            acked: Stats::get(&stats.acked),
            delivered,
            deliver_rate: rate(
                delivered,
                phase_start_ns,
                Stats::get(&stats.last_delivery_ns),
            ),
            expected,
            lost: expected.map(|e| e.saturating_sub(delivered)),
            latency: Latency::of(&stats.latency.snapshot()),
        }
    }
}

/// Everything one client task needs to connect.
struct ClientTask {
    target: Target,
    client_id: String,
    index: u64,
    start_at: Instant,
    clock: Clock,
    stats: Arc<Stats>,
    gate: Arc<Semaphore>,
}

impl ClientTask {
    /// Waits for its turn, connects (and subscribes to `filter`), and counts the outcome.
    async fn connect(&self, filter: Option<(&str, QoS)>) -> Option<Client> {
        tokio::time::sleep_until(self.start_at).await;
        let attempt = async {
            let _permit = self.gate.acquire().await;
            Stats::add(&self.stats.connect_attempts, 1);
            let mut client = Client::connect(&self.target, self.index, &self.client_id).await?;
            if let Some((filter, qos)) = filter {
                client.subscribe(filter, qos, self.target.timeout).await?;
            }
            Ok::<_, ClientError>(client)
        };
        match attempt.await {
            Ok(client) => {
                Stats::add(&self.stats.connected, 1);
                Stats::mark(&self.stats.last_connect_ns, self.clock.now_ns());
                Some(client)
            }
            Err(error) => {
                Stats::add(&self.stats.connect_failed, 1);
                self.first_error("connect", &error);
                None
            }
        }
    }

    /// Counts a connection lost after it was up.
    fn lost(&self, error: &ClientError) {
        Stats::add(&self.stats.disconnected, 1);
        self.first_error("connection", error);
    }

    /// Prints the first error of each kind, so a refused run says why without a flood.
    fn first_error(&self, what: &str, error: &ClientError) {
        if self.stats.first_error.set(()).is_ok() {
            eprintln!(
                "tributary bench: {what} of {} failed: {error} (further errors are only counted)",
                self.client_id
            );
        }
    }
}

async fn resolve(host: &str, port: u16) -> Result<SocketAddr, BenchError> {
    let error = |reason: String| BenchError::Resolve {
        host: host.to_owned(),
        reason,
    };
    tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| error(e.to_string()))?
        .next()
        .ok_or_else(|| error("no address".into()))
}

/// When client `k` of a phase starting at `start` may connect.
fn start_of(start: Instant, interval_ms: u64, k: u64) -> Instant {
    start + Duration::from_millis(interval_ms.saturating_mul(k))
}

/// Waits for every task of `set`, aborting what is left after `grace`.
async fn join<T: 'static>(set: &mut JoinSet<T>, grace: Duration) {
    let all = async { while set.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all).await.is_err() {
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

/// The longest a phase of `count` connects may take.
fn connect_window(common: &CommonArgs, count: u64) -> Duration {
    Duration::from_millis(common.interval_ms.saturating_mul(count)) + common.connect_timeout
}

/// `tributary bench conn`: connect, hold until `--duration`, close.
pub(super) async fn conn(common: &CommonArgs) -> Result<Summary, BenchError> {
    let run = Run::new(common).await?;
    let start = Instant::now();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for k in 0..common.count {
        let task = run.client(
            "conn",
            common.start_number + k,
            start_of(start, common.interval_ms, k),
        );
        let (stop, keep_alive) = (stop.clone(), common.keep_alive);
        tasks.spawn(async move {
            if let Some(client) = task.connect(None).await
                && let Err(error) = roles::hold(client, keep_alive, stop).await
            {
                task.lost(&error);
            }
        });
    }
    let deadline = start + common.duration;
    run.settled(
        common.count,
        deadline.min(start + connect_window(common, common.count)),
    )
    .await;
    eprintln!(
        "tributary bench: connects done: {} up, {} failed, {:.3}s",
        Stats::get(&run.stats.connected),
        Stats::get(&run.stats.connect_failed),
        start.elapsed().as_secs_f64()
    );
    tokio::time::sleep_until(deadline).await;
    let summary = run.summary("conn", common.count, 0, None);
    stop.cancel();
    join(&mut tasks, CLOSE_GRACE).await;
    run.live.cancel();
    Ok(summary)
}

/// `tributary bench sub`: subscribe, count until `--duration`, close.
pub(super) async fn subscribe(args: &SubArgs) -> Result<Summary, BenchError> {
    let common = &args.common;
    let run = Run::new(common).await?;
    let qos = QoS::from_u8(args.qos).unwrap_or_default();
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    spawn_subscribers(
        &run,
        &mut tasks,
        common,
        &args.topic,
        common.count,
        qos,
        false,
        &stop,
        None,
    );
    let deadline = start + common.duration;
    run.settled(
        common.count,
        deadline.min(start + connect_window(common, common.count)),
    )
    .await;
    let phase = run.clock.now_ns();
    tokio::time::sleep_until(deadline).await;
    stop.cancel();
    join(&mut tasks, CLOSE_GRACE).await;
    run.live.cancel();
    Ok(run.summary("sub", common.count, phase, None))
}

/// Starts `count` subscriber tasks; the filters that were granted go into `granted`.
#[allow(clippy::too_many_arguments)]
fn spawn_subscribers(
    run: &Run,
    tasks: &mut JoinSet<()>,
    common: &CommonArgs,
    topic: &str,
    count: u64,
    qos: QoS,
    latency: bool,
    stop: &CancellationToken,
    granted: Option<&Arc<Mutex<Vec<TopicFilter>>>>,
) {
    let start = Instant::now();
    for k in 0..count {
        let index = common.start_number + k;
        let task = run.client("sub", index, start_of(start, common.interval_ms, k));
        let filter = template::expand(topic, index, &task.client_id);
        let (stop, keep_alive) = (stop.clone(), common.keep_alive);
        let granted = granted.map(Arc::clone);
        tasks.spawn(async move {
            let Some(client) = task.connect(Some((&filter, qos))).await else {
                return;
            };
            if let Some(granted) = granted
                && let Ok(parsed) = TopicFilter::new(ByteStr::from(filter.as_str()), usize::MAX)
                && let Ok(mut granted) = granted.lock()
            {
                granted.push(parsed);
            }
            let stats = Arc::clone(&task.stats);
            if let Err(error) =
                roles::receive(client, keep_alive, latency, stats, task.clock, stop).await
            {
                task.lost(&error);
            }
        });
    }
}

/// `tributary bench pub`: subscribers first (with `--subs`), then publishers until `-L` or
/// `--duration`, then a drain until every expected delivery arrived or `--drain` passed.
pub(super) async fn publish(args: &PubArgs) -> Result<Summary, BenchError> {
    let common = &args.common;
    let run = Run::new(common).await?;
    let qos = QoS::from_u8(args.qos).unwrap_or_default();
    let sub_stop = CancellationToken::new();
    let mut subs = JoinSet::new();
    let granted = Arc::new(Mutex::new(Vec::new()));
    if args.subs > 0 {
        let topic = args.sub_topic.as_deref().unwrap_or(&args.topic);
        let start = Instant::now();
        spawn_subscribers(
            &run,
            &mut subs,
            common,
            topic,
            args.subs,
            qos,
            true,
            &sub_stop,
            Some(&granted),
        );
        run.settled(args.subs, start + connect_window(common, args.subs))
            .await;
    }
    let filters = granted.lock().map(|g| g.clone()).unwrap_or_default();

    let phase = run.clock.now_ns();
    let start = run.clock.at(phase);
    let deadline = start + common.duration;
    let mut pubs = JoinSet::new();
    let count = common.count.max(1);
    for k in 0..count {
        let index = common.start_number + k;
        let task = run.client("pub", index, start_of(start, common.interval_ms, k));
        let topic = template::expand(&args.topic, index, &task.client_id);
        let matching = filters.iter().filter(|f| f.matches(&topic)).count() as u64;
        let template = PublishTemplate::new(&topic, qos, args.size, run.target.version)
            .map_err(|e| BenchError::Invalid(format!("topic {topic:?}: {e}")))?;
        let limit = match args.limit {
            0 => u64::MAX,
            limit => limit / count + u64::from(k < limit % count),
        };
        let plan = PublishPlan {
            template: Arc::new(template),
            qos,
            interval: Duration::from_millis(args.interval_of_msg),
            limit,
            inflight: args.inflight,
            deadline,
            keep_alive: common.keep_alive,
        };
        pubs.spawn(async move {
            let Some(client) = task.connect(None).await else {
                return;
            };
            let stats = Arc::clone(&task.stats);
            let (sent, result) = roles::publish(client, plan, Arc::clone(&stats), task.clock).await;
            Stats::add(&stats.expected, sent.saturating_mul(matching));
            if let Err(error) = result {
                task.lost(&error);
            }
        });
    }
    // Publishers stop at the deadline on their own; the grace covers late connects and closes.
    join(
        &mut pubs,
        common.duration + connect_window(common, count) + CLOSE_GRACE,
    )
    .await;

    let expected = (args.subs > 0).then(|| Stats::get(&run.stats.expected));
    if let Some(expected) = expected {
        let drain_until = Instant::now() + args.drain;
        while Stats::get(&run.stats.delivered) < expected && Instant::now() < drain_until {
            tokio::time::sleep(POLL).await;
        }
    }
    let summary = run.summary("pub", count + args.subs, phase, expected);
    sub_stop.cancel();
    join(&mut subs, CLOSE_GRACE).await;
    run.live.cancel();
    Ok(summary)
}
